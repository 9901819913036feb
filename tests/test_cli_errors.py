"""Expected failures of the command line: one line ``xvertnet <command>: error: <what>: <why>``, exit code 2, no partial
output; warnings as one line each. Download, archive and network errors: ``test_download_failures.py``."""

from __future__ import annotations

import json
import re

import numpy as np
from command_line import run_cli, run_cli_subprocess
from PIL import Image
from repo_paths import REPO
from synthetic_data import write_png

from xvertnet.io.shard_store import open_shard_for_writing


def _ingest_shard(path, image):
    with open_shard_for_writing(path, stage="ingest", params={}) as shard:
        shard.add("img", {"image": np.asarray(image, np.float32)}, {"split": "test"})
    return path


def test_a_setting_outside_its_domain(capsys, tmp_path):
    shard = _ingest_shard(tmp_path / "ingest.h5", np.random.default_rng(0).random((64, 64)))
    code, message = run_cli(
        capsys,
        "roi",
        shard,
        "--out",
        tmp_path / "roi.h5",
        "--qc-dir",
        tmp_path / "qc",
        "--rejects",
        tmp_path / "rejects.csv",
        "--settings",
        json.dumps({"upper_fraction": 0.9, "lower_fraction": 0.5}),
    )
    assert (code, message) == (2, "config key 'roi': expected 0 < upper_fraction < lower_fraction < 1, got 0.9, 0.5")
    code, message = run_cli(capsys, "metrics", tmp_path / "any.png", "--settings", '{"lpc_sigma_onf": 2}')
    assert (code, message) == (2, "config key 'metrics': lpc_sigma_onf must be in (0, 1), got 2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ingest.h5", "ingest.h5.sha256"]


def test_an_input_of_the_wrong_kind(capsys, tmp_path):
    (tmp_path / "notes.h5").write_text("not HDF5\n")
    out = ["--out", tmp_path / "out.h5"]
    assert run_cli(capsys, "metrics", tmp_path) == (2, f"{tmp_path}: is a directory, not an image file")
    assert run_cli(
        capsys, "roi", tmp_path / "notes.h5", *out, "--qc-dir", tmp_path / "qc", "--rejects", tmp_path / "r.csv"
    ) == (2, f"{tmp_path / 'notes.h5'}: not an HDF5 file (no HDF5 signature)")
    assert run_cli(capsys, "prep", tmp_path / "missing.h5", *out) == (2, f"{tmp_path / 'missing.h5'}: no such file")
    ingest = _ingest_shard(tmp_path / "ingest.h5", np.random.default_rng(0).random((64, 64)))
    assert run_cli(capsys, "prep", ingest, *out) == (
        2,
        f"{ingest}: image img has no 'train_upper' (a shard of stage 'ingest'; is it the input this command expects?)",
    )
    assert run_cli(capsys, "check-config", tmp_path / "missing.yaml") == (
        2,
        f"{tmp_path / 'missing.yaml'}: no such file or directory",
    )
    assert not (tmp_path / "out.h5").exists() and not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_a_bad_crop_names_the_shard_the_image_and_the_reason(capsys, tmp_path):
    crop = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    broken = crop.copy()
    broken[3, 3] = np.nan
    with open_shard_for_writing(tmp_path / "roi.h5", stage="roi", params={}) as shard:
        shard.add(
            "img",
            {"train_upper": crop, "train_lower": crop, "eval_upper": crop, "eval_lower": broken},
            {"split": "test", "boxes": {}, "scale": 1.0},
        )
    code, message = run_cli(capsys, "prep", tmp_path / "roi.h5", "--out", tmp_path / "prep.h5")
    assert (code, message) == (2, f"{tmp_path / 'roi.h5'}: img/eval_lower: crop contains NaN or Inf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roi.h5", "roi.h5.sha256"]


def test_a_blank_image_is_refused_by_enhance_and_measured_with_one_warning(capsys, tmp_path):
    blank = write_png(tmp_path / "blank.png", np.zeros((128, 128), np.uint8))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text("{}")  # never read: the image is refused first
    code, message = run_cli(capsys, "enhance", blank, tmp_path / "out.png", "--model", tmp_path / "model")
    assert (code, message) == (2, f"{blank}: constant image (every pixel = 0), nothing to enhance")
    assert not (tmp_path / "out.png").exists()
    result = run_cli_subprocess("metrics", blank)
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        f"WARNING xvertnet.stages.metrics: {blank}: brisque, niqe are NaN (constant image (every pixel = 0))"
    ]
    printed = dict(line.split() for line in result.stdout.splitlines())
    assert printed["brisque"] == printed["niqe"] == "nan" and printed["entropy"] == "0"


def test_warnings_are_one_line_each(tmp_path):
    grey = np.tile(np.linspace(0, 255, 96).astype(np.uint8), (96, 1))
    alpha = np.full(grey.shape, 255, np.uint8)
    alpha[:12] = 0
    Image.fromarray(np.stack([grey, alpha], axis=-1), "LA").save(tmp_path / "la.png")
    write_png(tmp_path / "rgb.png", np.stack([grey, grey, 255 - grey], axis=-1))
    result = run_cli_subprocess(
        "ingest",
        tmp_path / "la.png",
        tmp_path / "rgb.png",
        "--out",
        tmp_path / "out.h5",
        "--rejects",
        tmp_path / "rejects.csv",
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert all(re.match(r"(INFO|WARNING) [\w.]+: \S", line) for line in lines), lines  # no source line, no traceback
    assert [line for line in lines if "py.warnings" in line] == [
        f"WARNING py.warnings: UserWarning: {tmp_path / 'la.png'}: alpha channel dropped (12.5 % of the pixels are not "
        "opaque; their grey values are used as stored)",
        f"WARNING py.warnings: UserWarning: {tmp_path / 'rgb.png'}: colour image converted to grey (rgb2gray weights)",
    ]


def test_roi_rejects_a_constant_image_left_in_a_shard_written_elsewhere(capsys, tmp_path):
    shard = _ingest_shard(tmp_path / "ingest.h5", np.zeros((512, 400)))
    code, _ = run_cli(
        capsys, "roi", shard, "--out", tmp_path / "roi.h5", "--qc-dir", tmp_path / "qc", "--rejects", tmp_path / "r.csv"
    )
    assert code == 0
    assert (tmp_path / "r.csv").read_text().splitlines()[1:] == [
        f'img,{shard},roi,"constant image (every pixel = 0), nothing to enhance"'
    ]
