"""SRCNN, VDSR and the dehazing stop rule: architectures, the residual identity, the haze model's inverse
and a stop rule that halts on a deteriorating sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from xvertnet.methods.super_resolution.dehaze import (
    T_MIN,
    DehazeNet,
    add_haze,
    iterate_with_stop_rule,
    random_haze,
    remove_haze,
)
from xvertnet.methods.super_resolution.networks import Srcnn, Vdsr, bicubic_pair, parameter_count


def _crop(seed=0, size=64):
    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.random((size, size)), 2)
    return ((image - image.min()) / (image.max() - image.min())).astype(np.float32)


def test_parameter_counts_equal_the_papers_architectures():
    assert (
        sum(p.numel() for n, p in Srcnn().named_parameters() if n.endswith("weight"))
        == 9 * 9 * 64 + 64 * 32 + 5 * 5 * 32
        == 8032
    )
    assert parameter_count(Srcnn()) == 8032 + 64 + 32 + 1
    assert parameter_count(Vdsr(depth=20)) == (9 * 64 + 64) + 18 * (9 * 64 * 64 + 64) + (9 * 64 + 1) == 665_921
    assert parameter_count(Vdsr(depth=11)) == (9 * 64 + 64) + 9 * (9 * 64 * 64 + 64) + (9 * 64 + 1)
    assert len([m for m in Vdsr(depth=11).modules() if isinstance(m, torch.nn.Conv2d)]) == 11


def test_shapes_and_the_residual_identity():
    x = torch.rand(2, 1, 37, 29)
    assert Srcnn()(x).shape == x.shape
    vdsr = Vdsr(depth=5)
    assert torch.equal(vdsr(x), x), "a VDSR whose last layer is zero returns its bicubic input"
    torch.nn.init.normal_(vdsr.last.weight, std=0.01)
    assert not torch.equal(vdsr(x), x)


def test_the_bicubic_pair_loses_detail_and_keeps_the_size():
    image = torch.from_numpy(_crop())[None, None]
    for scale in (2, 3, 4):
        upscaled = bicubic_pair(image, scale)
        assert upscaled.shape == image.shape and 0 <= float(upscaled.min()) and float(upscaled.max()) <= 1
    errors = [float(((bicubic_pair(image, s) - image) ** 2).mean()) for s in (2, 3, 4)]
    assert 0 < errors[0] < errors[1] < errors[2]


def test_the_haze_model_inverse_restores_a_crop():
    crop = _crop(1)
    t, a = random_haze(crop.shape, np.random.default_rng(0))
    hazy = add_haze(crop, t, a)
    assert not np.allclose(hazy, crop)
    np.testing.assert_allclose(remove_haze(hazy, t, a), crop, atol=1e-5)
    tt = torch.from_numpy(t)
    np.testing.assert_allclose(remove_haze(torch.from_numpy(hazy), tt, a).numpy(), crop, atol=1e-5)


def test_the_dehazing_network_predicts_a_physical_transmission():
    net = DehazeNet(width=8, heads=2)
    out, t, a = net(torch.rand(2, 1, 30, 22))
    assert out.shape == t.shape == (2, 1, 30, 22) and a.shape == (2, 1, 1, 1)
    assert float(t.min()) >= T_MIN and float(t.max()) <= 1 and 0 <= float(out.min()) and float(out.max()) <= 1


def test_the_stop_rule_halts_on_a_deteriorating_sequence():
    """Changes of 0.02, then 0.01 (settling: taken), then 0.2 (an iteration that changes the image far more than the
    one before: deterioration): the rule keeps the second iterate."""
    image = _crop(2) * 0.5 + 0.25
    offsets = iter([0.02, 0.01, 0.2, 0.0])

    def step(x):
        return np.clip(x + next(offsets), 0, 1)

    result, iterations, log = iterate_with_stop_rule(step, image, max_iterations=4, psnr_drop=1.0, ssim_drop=0.01)
    assert iterations == 2 and len(log) == 3 and log[1]["psnr"] > log[0]["psnr"] and log[2]["psnr"] < log[1]["psnr"] - 1
    np.testing.assert_allclose(result, image + 0.03, atol=1e-6)
    same, iterations, log = iterate_with_stop_rule(lambda x: np.clip(x + 0.01, 0, 1), image, max_iterations=3)
    assert iterations == 3, "steady changes converge to the end"


def test_vdsr_dehaze_enhances_with_its_stop_rule(tmp_path):
    from xvertnet.methods import get_method

    method = get_method(
        "vdsr-dehaze", {"steps": 3, "depth": 4, "dehaze_steps": 3, "dehaze_patch": 32, "max_iterations": 3}
    )
    metadata = method.fit([_crop(s) for s in range(3)], tmp_path / "m")
    assert metadata["method"] == "vdsr-dehaze" and not (tmp_path / "m" / "_vdsr_only").exists()
    loaded = get_method("vdsr-dehaze", {"depth": 4, "max_iterations": 3})
    loaded.load(tmp_path / "m")
    image = _crop(5)[:40, :33]
    dehazed, iterations, log = loaded.dehaze(image)
    assert (
        1 <= iterations <= 3 and len(log) >= iterations and dehazed.shape == image.shape
    )  # the first pass is always taken
    assert loaded.enhance(image).shape == image.shape


def test_the_tables_score_every_method_scale_and_iteration(tmp_path, monkeypatch):
    import pandas as pd

    from xvertnet.reporting import sr_table

    monkeypatch.setattr(sr_table, "SR_MODELS", {"srcnn": ("srcnn", {}), "vdsr-11": ("vdsr", {"depth": 11})})
    crops = [_crop(s) for s in range(3)]
    rois = [
        {"image_id": "a", "roi": "upper", "group": "held-out DRR", "image": _crop(7)[:40, :30]},
        {"image_id": "rg1", "roi": "lower", "group": "real", "image": _crop(8)[:41, :29]},
    ]
    settings = {
        "srcnn": {"steps": 2},
        "vdsr": {"steps": 2, "lr": 1e-6},
        "zssr": {"steps": 2, "patch": 16},
        "vdsr-dehaze": {"dehaze_steps": 2, "dehaze_patch": 32, "max_iterations": 2},
    }
    summary = sr_table.write_tables(crops, rois, settings, tmp_path)
    assert summary["training"]["vdsr-11"]["parameters"] == 333_569
    sr = pd.read_csv(tmp_path / "super_resolution.csv")
    assert set(sr["method"]) == {"bicubic", "srcnn", "vdsr-11", "zssr"} and set(sr["scale"]) == {2, 3, 4}
    assert len(sr) == 2 * 3 * 4 and sr["psnr"].notna().all()
    # VDSR starts as the identity on its bicubic input: two steps from zero cannot move it far from bicubic
    merged = sr.pivot_table(index=["image_id", "scale"], columns="method", values="psnr")
    assert (merged["vdsr-11"] - merged["bicubic"]).abs().max() < 1.0
    dehazing = pd.read_csv(tmp_path / "dehazing.csv")
    assert (
        set(dehazing["run"]) == {"0 iterations", "1 iterations", "2 iterations", "stop rule"}
        and len(dehazing) == 2 * 2 * 4
    )
    assert dehazing[dehazing["run"] == "stop rule"]["iterations"].between(1, 2).all()
    assert (
        "| stop rule |" in (tmp_path / "dehazing.md").read_text()
        and "| zssr |" in (tmp_path / "super_resolution.md").read_text()
    )


def test_held_out_rois_look_each_image_up_in_its_own_data_sets_manifest(tmp_path):
    import pandas as pd
    from synthetic_data import synthetic_shards

    from xvertnet.errors import InvalidValueError
    from xvertnet.io.datasets import shards_by_dataset
    from xvertnet.io.shard_store import TRAIN_ROIS
    from xvertnet.reporting.sr_table import held_out_rois

    shards = []
    for dataset in ("a", "b"):
        (tmp_path / dataset / "prep").mkdir(parents=True)
        shards += synthetic_shards(tmp_path / dataset / "prep", images=4)
    # both data sets hold img00 (split val); only a's is a clean DRR, b's a low-dose one (not scored)
    manifests = {
        "a": pd.DataFrame(
            {"image_id": ["img00", "img10"], "condition": ["standard", "standard"], "source": ["drr", "drr"]}
        ),
        "b": pd.DataFrame({"image_id": ["img00", "img10"], "condition": ["low_dose", "real"], "source": ["drr", "cr"]}),
    }
    rois = held_out_rois(shards_by_dataset(shards, manifests), manifests, {"val"})
    found = sorted({(roi["dataset"], roi["image_id"], roi["group"]) for roi in rois})
    assert found == [("a", "img00", "held-out DRR"), ("a", "img10", "held-out DRR"), ("b", "img10", "real")]
    assert len(rois) == 3 * len(TRAIN_ROIS)
    assert shards_by_dataset(shards, ["a"]) == {"a": shards}  # one data set: every shard is its
    with pytest.raises(InvalidValueError, match="not a stage shard of one of the data sets"):
        shards_by_dataset(shards, ["a", "c"])
