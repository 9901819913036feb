"""Workflow runs of their own (not the shared tiny run): a bad config, bad images, an enhance-only data set, a failed
retraining, a labelled data set, and a dry run of the public data sets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_runs import load_test_config, make_workdir, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

TINY = load_test_config("config")  # configs/test/config.yaml
XVERTNET = {"xvertnet-paper": 2, "xvertnet": 1}


def test_invalid_config_fails_before_any_job_naming_the_key(tmp_path):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["roi"]["canonical_height"] = "tall"
    workdir = make_workdir(tmp_path, config)
    result = snakemake(workdir)
    assert result.returncode != 0
    assert "config key 'roi.canonical_height'" in result.stderr
    assert not (workdir / "results").exists()


def test_bad_images_in_a_user_manifest_are_rejected_and_the_rest_goes_on(tmp_path, rg1_path):
    images = tmp_path / "data"
    images.mkdir()
    shutil.copy(rg1_path, images / "good.dcm")
    (images / "empty.png").write_bytes(b"")
    (images / "report.dcm").write_text("not an image")
    rows = [
        {"image_id": "good", "path": "good.dcm", "source": "user", "bit_depth": 15, "split": "test"},
        {"image_id": "empty", "path": "empty.png", "source": "user", "bit_depth": 8, "split": "test"},
        {"image_id": "report", "path": "report.dcm", "source": "user", "bit_depth": 8, "split": "test"},
    ]
    pd.DataFrame(rows).to_csv(images / "manifest.csv", index=False)
    config = {"datasets": [{"name": "mine", "manifest": str(images / "manifest.csv")}], "roi": TINY["roi"]}
    workdir = make_workdir(tmp_path, config)
    result = snakemake(
        workdir, "results/mine/roi/index.csv", "results/mine/prep/summary.csv"
    )  # one image: nothing to train on
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(pd.read_csv(workdir / "results/mine/roi/index.csv")["image_id"]) == ["good"]
    rejects = pd.read_csv(workdir / "results/mine/rejects.csv").set_index("image_id")
    assert "empty file" in rejects.loc["empty", "reason"]
    assert "not a DICOM file" in rejects.loc["report", "reason"]


def test_dry_run_for_montgomery_and_nih_contacts_no_host(tmp_path):
    config = {
        "datasets": [
            {"name": "montgomery", "manifest": "download", "base_url": "http://127.0.0.1:9/unreachable"},
            {"name": "nih", "manifest": "download", "registry": "nih_chestxray14", "shard_size": 256},
        ],
        "roi": TINY["roi"],
        "train": TINY["train"],
    }
    workdir = make_workdir(tmp_path, config)
    result = snakemake(workdir, "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    assert jobs["download"] == 2 and jobs["shard"] == 2
    assert "xvertnet download montgomery" not in result.stdout  # nothing ran
    assert not (workdir / "results").exists()


def test_an_enhance_only_data_set_with_existing_models_trains_nothing(tmp_path, rg1_path, rg1_small):
    from PIL import Image
    from synthetic_data import synthetic_shards

    from xvertnet.cli import main
    from xvertnet.model.training import TrainConfig, train_iteration

    settings = TrainConfig.from_config(
        {"phase1_epochs": 2, "phase2_epochs": 0, "base_width": 4, "depth": 2, "batch_size": 4}
    )
    train_iteration(synthetic_shards(tmp_path / "data"), tmp_path / "models" / "iter1", settings, progress=False)
    images = tmp_path / "my images"
    images.mkdir()
    shutil.copy(rg1_path, images / "chest.dcm")
    Image.fromarray(np.rint(rg1_small * 4095).astype(np.uint16)).save(images / "small.png")
    assert main(["manifest", str(images)]) == 0  # every image in split test
    config = {
        "datasets": [{"name": "mine", "manifest": str(images / "manifest.csv"), "enhance_only": True}],
        "roi": TINY["roi"],
        "xvertnet": {"mine-xvertnet": {"models": str(tmp_path / "models")}},
        "baselines": {"methods": ["clahe"]},
    }
    workdir = make_workdir(tmp_path, config)
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "rule train" not in log and "rule train_baseline" not in log and not (workdir / "results/models").exists()
    per_roi = pd.read_csv(workdir / "results/metrics/per_roi.csv")
    assert set(per_roi["method"]) == {"mine-xvertnet", "original", "clahe"} and set(per_roi["image_id"]) == {
        "chest",
        "small",
    }


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_failed_retraining_keeps_the_model_and_a_named_run_writes_apart(tmp_path, rg1_path, rg1_small):
    """A training job that fails (no `train` images) leaves the published model in place, and a
    second configuration with `run:` enhances with that model without touching the first run's results."""
    from PIL import Image

    from xvertnet.cli import main

    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(rg1_path, images / "chest.dcm")
    Image.fromarray(np.rint(rg1_small * 4095).astype(np.uint16)).save(images / "small.png")
    assert main(["manifest", str(images)]) == 0
    manifest = pd.read_csv(images / "manifest.csv")
    manifest.assign(split=["train" if image_id == "chest" else "test" for image_id in manifest["image_id"]]).to_csv(
        images / "train.csv", index=False
    )
    manifest.assign(split="test").to_csv(images / "test.csv", index=False)
    tiny_train = {"iterations": 1, "phase1_epochs": 2, "phase2_epochs": 0, "base_width": 4, "depth": 2, "batch_size": 2}
    first = {
        "datasets": [{"name": "mine", "manifest": str(images / "train.csv")}],
        "roi": TINY["roi"],
        "train": tiny_train,
        "xvertnet": {"xvertnet": {}},
        "baselines": {"methods": ["clahe"]},
    }
    workdir = make_workdir(tmp_path, first)
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    model = workdir / "results/models/xvertnet/iter1"
    published = {name: _sha256(model / name) for name in ("model.pt", "model.json")}
    assert published["model.pt"] == _sha256(model / "training/model.pt")
    table = _sha256(workdir / "results/tables/comparison.csv")

    # The case: the same run's data set now has no `train` images, so retraining fails.
    (workdir / "config.yaml").write_text(
        yaml.safe_dump({**first, "datasets": [{"name": "mine", "manifest": str(images / "test.csv")}]})
    )
    result = snakemake(workdir)
    assert result.returncode != 0 and "no training crops" in (workdir / "logs/train/xvertnet/iter1.log").read_text()
    assert not (model / "training/model.pt").exists()  # Snakemake removed the failed job's outputs...
    assert {name: _sha256(model / name) for name in published} == published  # ...not the published model
    assert (
        main(["enhance", str(images / "small.png"), str(tmp_path / "small_enhanced.png"), "--model", str(model.parent)])
        == 0
    )

    # A named run with its own (enhance-only) data set uses that model: nothing trains, nothing of the first run changes.
    second = {
        "run": "other",
        "datasets": [{"name": "other", "manifest": str(images / "test.csv"), "enhance_only": True}],
        "roi": TINY["roi"],
        "xvertnet": {"xvertnet": {"models": "results/models/xvertnet"}},
        "baselines": {"methods": ["clahe"]},
    }
    (workdir / "other.yaml").write_text(yaml.safe_dump(second))
    result = snakemake(workdir, "--configfile", str(workdir / "other.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rule train" not in result.stdout + result.stderr
    per_roi = pd.read_csv(workdir / "results/runs/other/metrics/per_roi.csv")
    assert set(per_roi["method"]) == {"xvertnet", "original", "clahe"} and set(per_roi["image_id"]) == {
        "chest",
        "small",
    }
    assert (workdir / "results/runs/other/tables/comparison.md").is_file()
    assert {name: _sha256(model / name) for name in published} == published
    assert _sha256(workdir / "results/tables/comparison.csv") == table


def test_a_labelled_data_set_gets_the_classifier_check(tmp_path, rg1_small):
    """A data set with `labels` (NIH-style CSV) gets a ResNet-18 per method on its enhanced
    images, trained on its train split and tested on its test split; without vertebra masks the
    segmentation task gives no rows and the comparison still builds."""
    from PIL import Image

    from xvertnet.cli import main

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for index in range(12):
        image = rg1_small + rng.normal(0, 0.01, rg1_small.shape)
        positive = index % 2 == 1
        if positive:  # a bright round opacity in the right lung
            yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
            image += 0.25 * (np.hypot(yy - 200 - 10 * index, xx - 140) < 30)
        name = f"{index:08d}_000.png"
        Image.fromarray(np.rint(np.clip(image, 0, 1) * 4095).astype(np.uint16)).save(images / name)
        rows.append({"Image Index": name, "Finding Labels": "Emphysema" if positive else "No Finding"})
    pd.DataFrame(rows).to_csv(tmp_path / "Data_Entry_2017.csv", index=False)
    assert main(["manifest", str(images)]) == 0
    manifest = pd.read_csv(images / "manifest.csv")
    manifest.assign(split=["test" if int(i[:8]) >= 8 else "train" for i in manifest["image_id"]]).to_csv(
        images / "manifest.csv", index=False
    )
    config = {
        "datasets": [
            {
                "name": "labelled",
                "manifest": str(images / "manifest.csv"),
                "enhance_only": True,
                "labels": {"path": str(tmp_path / "Data_Entry_2017.csv")},
            }
        ],
        "roi": TINY["roi"],
        "xvertnet": {"xvertnet": {"models": "shipped"}},
        "baselines": {"methods": ["clahe", "zssr"], "zssr": TINY["baselines"]["zssr"]},  # zssr: few steps, as tiny
        "classifier_check": {"size": 32, "iterations": 20, "batch_size": 8, "bootstrap": 100},
    }
    workdir = make_workdir(tmp_path, config)
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(workdir / "results/tables/classifier.csv")
    assert list(table["method"]) == ["xvertnet", "original", "clahe", "zssr"]  # every one enhances whole images
    assert set(table["n_train"]) == {8} and set(table["n_test"]) == {4} and set(table["positives_test"]) == {2}
    assert table["auc"].between(0, 1).all()
    assert "| labelled | clahe | 8 / 4 (2) |" in (workdir / "results/tables/classifier.md").read_text()
    assert len(pd.read_csv(workdir / "results/classifier/labelled/clahe.per_image.csv")) == 4
    assert "segmentation task skipped" in (workdir / "logs/segmentation_task/clahe.log").read_text()
    per_roi = pd.read_csv(workdir / "results/metrics/per_roi.csv")
    assert "seg_dice" not in per_roi.columns and (workdir / "results/tables/comparison.md").is_file()
