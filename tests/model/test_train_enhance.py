"""Training (schedule, checkpoints, SIGKILL resume, streaming loader) and enhancement (chain, tiles, DICOM)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage
from synthetic_data import synthetic_shards

from xvertnet.model.inference import EnhanceSettings, load_model
from xvertnet.model.training import TrainConfig, refresh_batchnorm, train_iteration
from xvertnet.model.training_data import CropDataset, find_crops
from xvertnet.model.training_log import validation_spikes

TINY_MODEL = {"base_width": 4, "depth": 2, "in_channels": 1}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return synthetic_shards(tmp_path_factory.mktemp("data"))


def _config(**changes) -> TrainConfig:
    values = {
        "phase1_epochs": 6,
        "phase2_epochs": 3,
        "batch_size": 4,
        "patience": 50,
        "model": TINY_MODEL,
        "precision": "fp32",
    }
    values.update(changes)
    return TrainConfig.from_dict(values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shards):
    out = tmp_path_factory.mktemp("model") / "iter1"
    summary = train_iteration(shards, out, _config(), progress=False)
    return out, summary


def test_split_by_image_and_crops(shards):
    train, val = find_crops(shards, "train"), find_crops(shards, "val")
    assert len(train) == 12 and len(val) == 4
    assert not {c.image_id for c in train} & {c.image_id for c in val}
    inputs, hfc = CropDataset(train)[0]
    assert inputs.shape == (1, 32, 32) and hfc.shape == (1, 32, 32) and inputs.dtype == torch.float32


def test_training_writes_model_log_curve_and_the_loss_falls(trained):
    out, summary = trained
    log = pd.read_csv(out / "train_log.csv")
    assert list(log["epoch"]) == list(range(1, 10)) and list(log["phase"]) == [1] * 6 + [2] * 3
    phase1 = log[log["phase"] == 1]
    assert phase1["train_l1"].iloc[-1] < phase1["train_l1"].iloc[0]
    assert log.loc[log["phase"] == 2, "train_l2"].notna().all() and log.loc[log["phase"] == 1, "train_l2"].isna().all()
    assert (out / "loss_curve.png").stat().st_size > 1000
    metadata = json.loads((out / "model.json").read_text())
    assert metadata["data"]["prep"]["lambda"] == 0.8 and metadata["data"]["roi"]["canonical_height"] == 64
    state = torch.load(out / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["state"]["epoch"] == 9 and summary["epochs"] == 9
    model, _ = load_model(out)
    assert not model.training


def test_early_stopping_moves_on_and_stops(tmp_path, shards):
    summary = train_iteration(
        shards, tmp_path / "es", _config(phase1_epochs=30, phase2_epochs=30, patience=1, lr=0.5), progress=False
    )
    log = pd.read_csv(tmp_path / "es" / "train_log.csv")
    assert summary["epochs"] < 60 and summary["phase1_epochs_run"] < 30
    assert set(log["phase"]) == {1, 2}


def test_the_design_study_terms_train_and_are_logged(tmp_path, shards):
    config = _config(
        phase1_epochs=2,
        phase2_epochs=2,
        blind_spot_weight=1.0,
        band_pass_weight=0.5,
        band_pass_sigmas=[1.0, 3.0],
        displayed_cnr_weight=0.25,
        refresh_batchnorm=True,
        model={**TINY_MODEL},
    )
    summary = train_iteration(shards, tmp_path / "terms", config, progress=False)
    log = pd.read_csv(tmp_path / "terms" / "train_log.csv")
    for term in ("blind_spot", "band_pass", "displayed_cnr"):
        for column in (f"train_{term}", f"val_{term}"):
            assert log[column].notna().all() and np.isfinite(log[column]).all() and (log[column] >= 0).all(), column
    # the total is the weighted sum of its terms
    phase1 = log[log["phase"] == 1]
    assert np.allclose(
        phase1["val_loss"],
        phase1["val_l1"]
        + phase1["val_blind_spot"]
        + 0.5 * phase1["val_band_pass"]
        + 0.25 * phase1["val_displayed_cnr"],
        rtol=1e-5,
    )
    assert summary["validation_spikes"] == validation_spikes(log.to_dict("records"))  # what the log shows
    plain = _config(phase1_epochs=1, phase2_epochs=0)
    train_iteration(shards, tmp_path / "plain", plain, progress=False)
    plain_log = pd.read_csv(tmp_path / "plain" / "train_log.csv")
    assert plain_log["train_blind_spot"].isna().all() and plain_log["train_band_pass"].isna().all()
    assert plain_log["train_displayed_cnr"].isna().all()


def test_the_bone_prior_trains_on_the_crops_with_a_target_and_is_refused_without_any(tmp_path, shards):
    import shutil

    import h5py

    from xvertnet.model.training import TrainingError

    copies = []
    for shard in shards:
        copy = tmp_path / shard.name
        shutil.copyfile(shard, copy)
        with h5py.File(copy, "r+") as handle:
            for image_id, group in handle["items"].items():
                if group.attrs["split"] in ("train", b"train") and image_id.endswith(
                    ("1", "2")
                ):  # some training images only
                    for roi in ("train_upper", "train_lower"):
                        group[f"{roi}/B"] = np.clip(group[f"{roi}/X"][()] * 1.5, 0, 1)
        copies.append(copy)
    summary = train_iteration(
        copies, tmp_path / "bone", _config(phase1_epochs=2, phase2_epochs=1, bone_weight=1.0), progress=False
    )
    log = pd.read_csv(tmp_path / "bone" / "train_log.csv")
    assert log["train_bone"].notna().all() and (log["train_bone"] >= 0).all() and log["val_bone"].isna().all()
    assert summary["epochs"] == 3
    with pytest.raises(TrainingError, match="no training crop has a bone target"):
        train_iteration(
            shards, tmp_path / "none", _config(phase1_epochs=1, phase2_epochs=0, bone_weight=1.0), progress=False
        )


def test_refreshed_batchnorm_statistics_are_those_of_the_data_with_the_current_weights():
    from xvertnet.model.network import ModelConfig, XVertNet

    torch.manual_seed(0)
    model = XVertNet(ModelConfig(base_width=4, depth=1))
    data = [(torch.rand(4, 1, 16, 16) * 3 + 1, torch.randn(4, 1, 16, 16)) for _ in range(3)]
    refresh_batchnorm(model, data, device=torch.device("cpu"), dtype=None)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    captured = []
    handle = first.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))
    model.eval()
    with torch.no_grad():
        for inputs, hfc in data:
            model(inputs, hfc)
    handle.remove()
    # what the layer sees on the data with these weights: the average of the batches' means and
    # (unbiased) variances, as a cumulative BatchNorm average is
    means = torch.stack([batch.mean(dim=(0, 2, 3)) for batch in captured]).mean(dim=0)
    variances = torch.stack([batch.var(dim=(0, 2, 3)) for batch in captured]).mean(dim=0)
    assert torch.allclose(first.running_mean, means, atol=1e-5)
    assert torch.allclose(first.running_var, variances, rtol=1e-3, atol=1e-6)
    assert first.momentum == 0.1  # restored


def test_the_loss_curve_names_its_configuration():
    from xvertnet.model.training import curve_title

    title = curve_title(
        "results/models/xvertnet/iter2/training", _config(band_pass_weight=0.5, refresh_batchnorm=True), 2
    )
    assert (
        title.startswith("xvertnet: XVertNet iteration 2\n")
        and "band_pass_weight 0.5" in title
        and "BatchNorm refreshed" in title
    )
    assert "blind_spot" not in title  # a term that is off is not named


def test_validation_spikes_are_found_per_phase():
    rows = [
        {"epoch": e, "phase": 1 if e <= 5 else 2, "val_loss": v}
        for e, v in enumerate([0.9, 0.8, 0.7, 0.7, 0.6, 0.5, 20.0, 428.0, 0.45, 0.44, 0.43, 0.43], start=1)
    ]
    assert validation_spikes(rows) == [7, 8]
    assert validation_spikes([{**row, "val_loss": float("nan")} for row in rows]) == []


def test_streaming_loader_with_worker_processes(tmp_path, shards):
    summary = train_iteration(
        shards, tmp_path / "workers", _config(phase1_epochs=1, phase2_epochs=0, num_workers=2), progress=False
    )
    assert summary["epochs"] == 1


#: ``xvertnet train`` that SIGKILLs itself right after writing the log of its third epoch (the checkpoint of that
#: epoch is written just before): a kill at a known point of the run on any machine, however fast.
KILLED_AFTER_THREE_EPOCHS = """
import os, signal, sys
import xvertnet.model.training as training
write_log = training.write_log
def write_log_then_die(rows, path):
    write_log(rows, path)
    if len(rows) >= 3:
        os.kill(os.getpid(), signal.SIGKILL)
training.write_log = write_log_then_die
from xvertnet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_and_restart_resumes_and_matches_an_uninterrupted_run(tmp_path, shards):
    settings = json.dumps(_config(phase1_epochs=25, phase2_epochs=5).record())
    arguments = ["train", *map(str, shards), "--settings", settings, "--no-progress"]
    command = [sys.executable, "-m", "xvertnet", *arguments]
    killed = tmp_path / "killed"
    process = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_THREE_EPOCHS, *arguments, "--out-dir", str(killed)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    done_before = len(pd.read_csv(killed / "train_log.csv"))
    assert done_before == 3, "killed after the third epoch"
    assert not (killed / "model.json").exists()
    for output in ("model.pt", "train_log.csv", "loss_curve.png"):  # Snakemake deletes an incomplete job's outputs
        (killed / output).unlink(missing_ok=True)
    resumed = subprocess.run([*command, "--out-dir", str(killed)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "after epoch 3" in resumed.stderr, resumed.stderr[-2000:]
    assert list(pd.read_csv(killed / "train_log.csv")["epoch"]) == list(range(1, 31))
    straight = subprocess.run(
        [*command, "--out-dir", str(tmp_path / "straight")], capture_output=True, text=True, timeout=600
    )
    assert straight.returncode == 0
    resumed_weights = torch.load(killed / "model.pt", weights_only=True)
    straight_weights = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    for name, tensor in straight_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, msg=name)


def test_a_finished_run_whose_outputs_were_deleted_ends_with_the_same_model_and_log(tmp_path, shards):
    # What Snakemake does when an input's timestamp changes but not its content: outputs deleted, job rerun.
    config = _config(phase1_epochs=3, phase2_epochs=3, patience=2)
    train_iteration(shards, tmp_path / "m", config, progress=False)
    first = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    log_rows = pd.read_csv(tmp_path / "m" / "train_log.csv")
    for output in ("model.pt", "model.json", "train_log.csv", "loss_curve.png"):
        (tmp_path / "m" / output).unlink()
    summary = train_iteration(shards, tmp_path / "m", config, progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "m" / "train_log.csv"), log_rows)
    again = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert all(torch.equal(again[name], tensor) for name, tensor in first.items())  # the best epoch's, not the last
    assert (
        summary["best_epoch"]
        == int(log_rows.loc[log_rows["phase"] == log_rows["phase"].max(), "val_loss"].idxmin()) + 1
    )


def test_changed_settings_do_not_resume_a_stale_checkpoint(tmp_path, shards, caplog):
    train_iteration(shards, tmp_path / "m", _config(phase1_epochs=2, phase2_epochs=0), progress=False)
    train_iteration(shards, tmp_path / "m", _config(phase1_epochs=2, phase2_epochs=0, lr=5e-4), progress=False)
    assert "starting afresh" in caplog.text


# ------------------------------------------------------------------ enhancement


def test_refine_writes_next_iteration_data(tmp_path, trained, shards):
    from xvertnet.io.shard_store import file_attrs, read_item
    from xvertnet.model.inference import refine_shard

    out, _ = trained
    assert refine_shard(out, shards[0], tmp_path / "refined.h5") == 4
    arrays, attrs = read_item(tmp_path / "refined.h5", "img01")
    assert set(arrays) == {f"{roi}/{key}" for roi in ("train_upper", "train_lower") for key in ("X", "Xp", "Y")}
    assert all(np.isfinite(a).all() for a in arrays.values())
    assert attrs["split"] == "train"
    assert file_attrs(tmp_path / "refined.h5")["params"]["iteration"] == 1


def test_tiled_inference_matches_whole_image_inference(trained):
    from xvertnet.model.inference import Chain

    out, _ = trained
    chain = Chain([out, out], precision="fp32")
    image = ndimage.gaussian_filter(np.random.default_rng(3).random((150, 120)), 2)
    image = (image - image.min()) / (image.max() - image.min())
    whole = chain.run(image)
    tiled = chain.run(image, tile=64, overlap=24)
    assert tiled.shape == whole.shape == image.shape and np.isfinite(tiled).all()
    assert np.abs(tiled - whole).mean() < 0.02


def test_enhance_dicom_keeps_patient_and_study_with_a_new_series(tmp_path, trained, rg1_path):
    import pydicom

    from xvertnet.cli import main
    from xvertnet.io.readers import read_image

    out, _ = trained
    code = main(
        [
            "enhance",
            "--model",
            str(out.parent),
            str(rg1_path),
            str(tmp_path / "enhanced.dcm"),
            "--settings",
            '{"tile": 64, "overlap": 16}',
        ]
    )
    assert code == 0
    source, derived = pydicom.dcmread(rg1_path), pydicom.dcmread(tmp_path / "enhanced.dcm")
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate"):
        assert derived.get(keyword) == source.get(keyword), keyword
    assert derived.SeriesInstanceUID != source.SeriesInstanceUID and derived.SOPInstanceUID != source.SOPInstanceUID
    assert derived.file_meta.MediaStorageSOPInstanceUID == derived.SOPInstanceUID
    assert list(derived.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert derived.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    metadata = json.loads((out / "model.json").read_text())
    assert metadata["model_sha256"] in derived.DerivationDescription and "xvertnet" in derived.SoftwareVersions
    assert (derived.Rows, derived.Columns) == (source.Rows, source.Columns)
    record = read_image(tmp_path / "enhanced.dcm")
    assert record.photometric == "MONOCHROME2" and np.isfinite(record.pixels).all()


def test_enhance_png_of_any_size(tmp_path, trained):
    from PIL import Image

    from xvertnet.model.whole_image import enhance_file

    out, _ = trained
    source = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(1).random((301, 203)) * 255).astype(np.uint8)).save(source)
    enhance_file([out], source, tmp_path / "out.png", EnhanceSettings(tile=64, overlap=16))
    result = np.asarray(Image.open(tmp_path / "out.png"))
    assert result.shape == (301, 203) and result.dtype == np.uint16


def test_native_resolution_applies_a_global_map_exactly_and_keeps_full_resolution_detail():
    from skimage.transform import resize

    from xvertnet.model.inference import native_resolution

    rng = np.random.default_rng(4)
    full = np.clip(
        ndimage.gaussian_filter(rng.random((400, 300)), 3) * 2 - 0.5 + 0.05 * rng.standard_normal((400, 300)), 0.2, 0.8
    )
    full = full.astype(np.float32)
    low = resize(full, (100, 75), anti_aliasing=True).astype(np.float32)
    exact = native_resolution(full, low, 1.5 * low - 0.2, eps=1e-9)  # eps only shrinks the gain where the input is flat
    np.testing.assert_allclose(exact, np.clip(1.5 * full - 0.2, 0, 1), atol=2e-3)
    enhanced_low = np.clip(low + 2.0 * (low - ndimage.gaussian_filter(low, 4)), 0, 1)  # a local contrast boost
    native = native_resolution(full, low, enhanced_low)
    resized = resize(enhanced_low, full.shape, order=1)
    detail = lambda image: float(np.mean(ndimage.laplace(image.astype(np.float64)) ** 2))  # noqa: E731
    assert detail(native) > 0.8 * detail(full) > 10 * detail(resized)
    assert (
        np.abs(resize(native, low.shape, anti_aliasing=True) - enhanced_low).mean() < 0.01
    )  # the enhancement at its scale


def test_whole_file_enhancement_of_a_smooth_image_has_no_checkerboard(tmp_path, trained):
    from PIL import Image

    from xvertnet.model.whole_image import enhance_file

    out, _ = trained  # bilinear upsampling (the default); canonical height 64
    image = ndimage.gaussian_filter(np.random.default_rng(5).random((256, 256)), 8)
    image = (image - image.min()) / (image.max() - image.min()) * 0.6 + 0.2
    Image.fromarray(np.rint(image * 65535).astype(np.uint16)).save(tmp_path / "smooth.png")
    enhance_file([out], tmp_path / "smooth.png", tmp_path / "out.png", EnhanceSettings(tile=64, overlap=16))
    result = np.asarray(Image.open(tmp_path / "out.png")).astype(np.float64) / 65535
    detail = result - ndimage.gaussian_filter(result, 2)
    power = np.abs(np.fft.fft2(detail)) ** 2
    nyquist = power[128, :].sum() + power[:, 128].sum() - power[128, 128]
    assert nyquist / power.sum() < 0.05  # 2 of 256 lines hold ~0.8 % of a pattern-free spectrum


def test_enhance_works_right_after_install_with_the_shipped_model_set(tmp_path, rg1_path):
    from PIL import Image

    from xvertnet.cli import main
    from xvertnet.config import SHIPPED_MODELS
    from xvertnet.model.inference import load_model

    _, metadata = load_model(SHIPPED_MODELS / "iter1")  # its sha256 matches model.json
    assert metadata["model"]["output_head"] == "anchored" and (SHIPPED_MODELS / "MODEL_CARD.md").is_file()
    assert main(["enhance", str(rg1_path), str(tmp_path / "rg1.png")]) == 0  # no --model
    assert np.asarray(Image.open(tmp_path / "rg1.png")).shape == (1955, 1841)
