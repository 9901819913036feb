"""Helpers shared by the tests (one module; no test file imports another)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import yaml
from PIL import Image
from scipy import ndimage

from xvertnet.preprocess import PrepParams, preprocess
from xvertnet.shard_store import TRAIN_ROIS, EVAL_ROIS, open_shard_for_writing

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
#: The workflow test configurations (``.test/``): a tiny demo run and the SLURM run.
TEST_CONFIGS = REPO / ".test"


def load_test_config(name: str) -> dict:
    """A workflow test configuration from ``.test/<name>.yaml``."""
    return yaml.safe_load((TEST_CONFIGS / f"{name}.yaml").read_text())


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(workdir), "--snakefile", str(workdir / "Snakefile"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    lines = output.splitlines()
    if "Job stats:" not in lines:
        return {}
    table = lines[lines.index("Job stats:") + 3 :]
    jobs = {}
    for line in table:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def dry_run_with_change(workdir: Path, section: str, key: str, value) -> tuple[dict[str, int], str]:
    """(planned jobs, stdout) of a dry run with one config key changed (through an extra --configfile)."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config.setdefault(section, {})[key] = value
    changed = workdir / f"changed_{section}_{key}.yaml"
    changed.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--dry-run", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr[-2000:]
    return planned_jobs(result.stdout + result.stderr), result.stdout


def make_workdir(tmp_path: Path, config: dict) -> Path:
    workdir = tmp_path / "run"
    workdir.mkdir()
    shutil.copy(REPO / "Snakefile", workdir)
    shutil.copytree(REPO / "workflow", workdir / "workflow")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir


def synthetic_shards(folder: Path, *, size: int = 32, images: int = 8) -> list[Path]:
    """Two data shards of smooth random 'radiographs' with vertical bright bars, preprocessed by Eqs. 1-6."""
    rng = np.random.default_rng(0)
    params = PrepParams()
    paths = []
    for shard_index in range(2):
        path = folder / f"shard-{shard_index:05d}.h5"
        with open_shard_for_writing(path, stage="prep", params=params.record(), upstream={"roi": {"canonical_height": 64}}) as shard:
            for index in range(images // 2):
                arrays = {}
                for roi in (*TRAIN_ROIS, *EVAL_ROIS):
                    image = ndimage.gaussian_filter(rng.random((size, size)), 2)
                    image[:, size // 2 - 3 : size // 2 + 3] += 0.3 * (1 + np.sin(np.arange(size) / 2))[:, None]
                    image = (image - image.min()) / (image.max() - image.min())
                    result = preprocess(image, params)
                    arrays.update({f"{roi}/{key}": result[key] for key in ("X", "Xp", "Y")})
                split = "val" if index == 0 else "train"
                shard.add(f"img{shard_index}{index}", arrays, {"split": split, "boxes": {}, "scale": 1.0})
        paths.append(path)
    return paths


def bad_files(tmp_path, rg1_path, rg1_small):
    import tifffile

    files = {}
    files["zero-byte"] = tmp_path / "empty.png"
    files["zero-byte"].write_bytes(b"")
    good = write_png(tmp_path / "good.png", np.rint(rg1_small * 255).astype(np.uint8))
    data = good.read_bytes()
    files["truncated"] = tmp_path / "truncated.png"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["text-as-dicom"] = tmp_path / "notes.dcm"
    files["text-as-dicom"].write_text("this is a radiology report, not an image\n")
    ds = pydicom.dcmread(rg1_path)
    del ds.PixelData
    files["no-pixel-data"] = tmp_path / "nopixels.dcm"
    ds.save_as(files["no-pixel-data"])
    files["one-pixel"] = write_png(tmp_path / "one.png", np.zeros((1, 1), np.uint8))
    files["size-bomb-png"] = bomb_png(tmp_path / "bomb.png")
    ds = pydicom.dcmread(rg1_path)
    ds.Rows, ds.Columns = 65535, 65535
    files["size-bomb-dicom"] = tmp_path / "bomb.dcm"
    ds.save_as(files["size-bomb-dicom"])
    nan = rg1_small.astype(np.float32).copy()
    nan[10, 10] = np.nan
    files["nan-tiff"] = tmp_path / "nan.tif"
    tifffile.imwrite(files["nan-tiff"], nan)
    files["unknown-format"] = tmp_path / "image.xyz"
    files["unknown-format"].write_bytes(b"\x00" * 100)
    files["all-zero"] = write_png(tmp_path / "blank.png", np.zeros((64, 64), np.uint8))
    files["near-constant"] = write_png(tmp_path / "near_blank.png", near_constant_image())
    return files


def near_constant_image() -> np.ndarray:
    """A blank exposure: grey 100 +- 1 with a small burnt-in label (60 of 16384 pixels at 255)."""
    image = (100 + np.random.default_rng(1).integers(-1, 2, (128, 128))).astype(np.uint8)
    image[4:9, 4:16] = 255
    return image


EXPECTED_REASONS = {
    "zero-byte": "empty file",
    "truncated": "cannot decode PNG",
    "text-as-dicom": "not a DICOM file",
    "no-pixel-data": "without Pixel Data",
    "one-pixel": "below the minimum side",
    "size-bomb-png": "exceeds the limit",
    "size-bomb-dicom": "exceeds the limit",
    "nan-tiff": "NaN or Inf",
    "unknown-format": "unsupported format",
    "all-zero": "constant image (every pixel = 0), nothing to enhance",
    "near-constant": "near-constant image (99 % of the pixels within",
}
#: Files the readers read and ingest refuses (nothing to enhance): the reason is ``flat_image_reason``'s.
REFUSED_AFTER_READING = ("all-zero", "near-constant")


def run_cli(capsys, *argv) -> tuple[int, str]:
    """Run ``xvertnet argv`` in this process: the exit code and its error line, asserted to be the only line it printed
    to stderr besides log records ("" when it succeeded)."""
    from xvertnet.cli import main

    capsys.readouterr()
    code = main([str(arg) for arg in argv])
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith(("DEBUG ", "INFO ", "WARNING "))]
    if code == 0:
        assert lines == [], lines
        return code, ""
    prefix = f"xvertnet {argv[0]}: error: "
    assert len(lines) == 1 and lines[0].startswith(prefix), lines
    return code, lines[0][len(prefix):]


def run_cli_subprocess(*argv, cwd=None) -> subprocess.CompletedProcess:
    """``python -m xvertnet argv`` in a fresh interpreter (what a user's terminal shows), text output captured."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "xvertnet", *map(str, argv)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def write_png(path, array):
    Image.fromarray(array).save(path, format="PNG")
    return path


def bomb_png(path, width=100_000, height=100_000):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path
