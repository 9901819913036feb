"""Eqs. 1-6 on small arrays against hand-computed values, the guards, and the prep stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xvertnet.preprocessing.preprocess import (
    PrepParams,
    combined_image,
    high_frequency_components,
    inverted_image,
    preprocess,
    preprocessed_image,
)
from xvertnet.preprocessing.wls import WlsParams, wls_smooth

X = np.array([[0.2, 0.4], [0.6, 0.8]])  # mean 0.5


def test_eq1_inverted_image():
    np.testing.assert_allclose(inverted_image(X), [[0.3, 0.1], [-0.1, -0.3]], atol=1e-12)


def test_eq4_combined_image_and_its_floor():
    g = np.full((2, 2), 0.1)
    # E = X_inv + g = [[0.4, 0.2], [0.0, -0.2]]; floor 0.1 * mean(X) = 0.05.
    np.testing.assert_allclose(combined_image(X, g, e_floor=0.1), [[0.4, 0.2], [0.05, 0.05]], atol=1e-12)
    # Wherever E > floor nothing changes.
    np.testing.assert_allclose(combined_image(X, np.full((2, 2), 1.0), e_floor=0.1), inverted_image(X) + 1.0)


def test_eq5_preprocessed_image_raw_and_rescaled():
    e = np.array([[0.4, 0.2], [0.05, 0.05]])
    raw, (low, high) = preprocessed_image(X, e, rescale=False)
    np.testing.assert_allclose(raw, [[0.5, 2.0], [12.0, 16.0]], atol=1e-12)
    assert (low, high) == pytest.approx((0.5, 16.0))
    rescaled, _ = preprocessed_image(X, e, rescale=True)
    np.testing.assert_allclose(rescaled, [[0.0, 1.5 / 15.5], [11.5 / 15.5, 1.0]], atol=1e-12)


def test_eq6_hfc_holds_the_fine_detail_and_leaves_strong_edges_to_the_base_layer():
    """What Eq. 6 is for, measured rather than restated: the HFC of a flat image with a fine texture is that texture
    (within 1 %), a strong edge stays in the edge-preserving WLS base (under 2 % of its height in the HFC), and a
    constant image has none."""
    params = WlsParams(lam=0.8, solver="amg")
    texture = 0.02 * ((np.indices((64, 64)).sum(axis=0) % 2) * 2 - 1)  # a one-pixel checkerboard, +-0.02
    hfc = high_frequency_components(0.5 + texture, params)
    assert np.corrcoef(hfc.ravel(), texture.ravel())[0, 1] > 0.999
    assert hfc.std() == pytest.approx(texture.std(), rel=0.01)
    step = np.where(np.arange(64)[None, :] < 32, 0.2, 0.8) * np.ones((64, 1))  # an edge of height 0.6
    assert np.abs(high_frequency_components(step, params)).max() < 0.02 * 0.6
    np.testing.assert_allclose(high_frequency_components(np.full((8, 8), 0.4), params), 0.0, atol=1e-9)


def test_full_chain_matches_the_equations(rg1_small):
    crop = rg1_small[100:228, 150:278]
    params = PrepParams(wls=WlsParams(lam=0.8, solver="amg"))
    result = preprocess(crop, params)
    g = wls_smooth(crop, params.wls)
    e = np.maximum(crop.mean() - crop + g, 0.1 * crop.mean())
    xp = crop / e
    xp = (xp - xp.min()) / (xp.max() - xp.min())
    np.testing.assert_allclose(result["Xp"], xp, atol=1e-6)
    np.testing.assert_allclose(result["Y"], xp - wls_smooth(xp, params.wls), atol=1e-6)
    assert all(result[key].dtype == np.float32 for key in ("X", "X_inv", "g", "E", "Xp", "Y"))


@pytest.mark.parametrize("kind", ["zeros", "flat", "step", "bright-detail"])
def test_no_nan_or_inf_on_degenerate_crops(kind):
    crop = np.zeros((32, 32))
    if kind == "flat":
        crop[:] = 0.5
    elif kind == "step":
        crop[:, 16:] = 1.0
    elif kind == "bright-detail":  # detail far above the mean: E would go negative without the floor
        crop[:] = 0.05
        crop[10:12, 10:12] = 1.0
    result = preprocess(crop, PrepParams())
    for key in ("E", "Xp", "Y"):
        assert np.isfinite(result[key]).all(), key
    assert result["E"].min() > 0 or kind == "zeros"
    if kind == "bright-detail":
        assert result["e_clamped_fraction"] > 0


def test_guard_parameters_are_checked():
    with pytest.raises(ValueError, match="e_floor must be in"):
        PrepParams(e_floor=0)


def test_prep_shard_is_atomic_when_killed(tmp_path, monkeypatch):
    import xvertnet.preprocessing.prep_shard as prep
    from xvertnet.demo.demo_data import DemoSettings, build_demo_data
    from xvertnet.io.datasets import read_manifest
    from xvertnet.io.ingest import ingest_entries
    from xvertnet.io.shard_store import file_attrs, item_ids, read_item
    from xvertnet.preprocessing.roi import roi_shard
    from xvertnet.preprocessing.spine_location import RoiSettings

    # the two demo DRRs it needs, made alone (the whole demo data set takes about 50 s)
    demo = DemoSettings.from_config(
        {
            "patients": [{"name": "lidc0001", "views": ["rotl4"]}],
            "conditions": ["standard", "low_dose"],
            "include_real": False,
            "max_slice_mm": 2.5,
        }
    )
    build_demo_data(tmp_path / "demo" / "images", tmp_path / "demo" / "manifest.csv", demo)
    manifest = read_manifest(tmp_path / "demo" / "manifest.csv")
    entries = manifest[
        manifest["image_id"].isin(["drr_lidc0001_rotl4_standard", "drr_lidc0001_rotl4_low_dose"])
    ].to_dict("records")
    ingest_entries(entries, tmp_path / "ingest.h5", tmp_path / "r.csv")
    settings = RoiSettings(canonical_height=512, train_size=(256, 256), eval_size=(128, 73))
    roi_shard(tmp_path / "ingest.h5", tmp_path / "roi.h5", tmp_path / "qc", settings, tmp_path / "r2.csv")

    params = PrepParams()
    assert prep.prep_shard(tmp_path / "roi.h5", tmp_path / "prep.h5", params, figure_dir=tmp_path / "fig") == 2
    arrays, attrs = read_item(tmp_path / "prep.h5", "drr_lidc0001_rotl4_standard")
    assert arrays["train_upper/Y"].shape == (256, 256) and arrays["eval_lower/Xp"].shape == (128, 73)
    assert attrs["boxes"]["eval_upper"][2:] == [128, 73]
    recorded = file_attrs(tmp_path / "prep.h5")
    assert recorded["params"]["lambda"] == 0.8 and recorded["params"]["solver"] == "fast"
    assert len(recorded["inputs_sha256"][str(tmp_path / "roi.h5")]) == 64
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == [
        "drr_lidc0001_rotl4_low_dose.png",
        "drr_lidc0001_rotl4_standard.png",
    ]

    calls = {"n": 0}
    original = prep.preprocess

    def dies_on_the_fifth_crop(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(prep, "preprocess", dies_on_the_fifth_crop)
    with pytest.raises(KeyboardInterrupt):
        prep.prep_shard(tmp_path / "roi.h5", tmp_path / "killed.h5", params)
    assert not (tmp_path / "killed.h5").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    assert item_ids(tmp_path / "prep.h5") == ["drr_lidc0001_rotl4_low_dose", "drr_lidc0001_rotl4_standard"]


def test_the_bone_prior_target_reaches_the_training_crops_of_training_images_only(tmp_path):
    """demo.bone_emphasis -> manifest bone_path (training split only) -> ingest -> roi -> prep ``<roi>/B``; the demo
    data are the same files whether its views are projected one after the other or at once."""
    from xvertnet.demo.demo_data import DemoSettings, build_demo_data
    from xvertnet.io.datasets import read_manifest
    from xvertnet.io.ingest import ingest_entries
    from xvertnet.io.readers import read_image
    from xvertnet.model.training_data import CropDataset, find_crops
    from xvertnet.preprocessing.prep_shard import prep_shard
    from xvertnet.preprocessing.roi import roi_shard
    from xvertnet.preprocessing.spine_location import RoiSettings

    settings = DemoSettings.from_config(
        {
            # two patients: the second is prepared while the first one's views are projected
            "patients": [{"name": "lidc0001", "views": ["rotl4", "tiltd3"]}, {"name": "tschest", "views": ["ap"]}],
            "conditions": ["standard"],
            "include_real": False,
            "bone_emphasis": 10.0,
            "max_slice_mm": 2.5,  # lidc0001's own slices: no interpolation (a plumbing test; 25 s less per build)
        }
    )
    build_demo_data(tmp_path / "images", tmp_path / "manifest.csv", settings, workers=2)
    # Views projected in two threads: the same bytes as one after the other (each image has its own random stream).
    build_demo_data(tmp_path / "one" / "images", tmp_path / "one" / "manifest.csv", settings, workers=1)
    written = sorted(path.name for path in (tmp_path / "images").iterdir())
    assert written == sorted(path.name for path in (tmp_path / "one" / "images").iterdir()) and len(written) == 12
    for name in written:
        assert (tmp_path / "images" / name).read_bytes() == (tmp_path / "one" / "images" / name).read_bytes(), name
    assert (tmp_path / "manifest.csv").read_text() == (tmp_path / "one" / "manifest.csv").read_text()
    manifest = read_manifest(tmp_path / "manifest.csv").set_index("image_id")
    train, val = "drr_lidc0001_rotl4_standard", "drr_lidc0001_tiltd3_standard"
    assert (
        manifest.loc[train, "split"] == "train" and manifest.loc[train, "bone_path"] == "images/bone_lidc0001_rotl4.png"
    )
    assert manifest.loc[val, "bone_path"] == ""  # the prior never sees a validation (or test) image
    image = read_image(manifest.loc[train, "resolved_path"]).pixels.astype(float)
    bone = read_image(manifest.loc[train, "resolved_bone_path"]).pixels.astype(float)
    mask = read_image(manifest.loc[train, "resolved_mask_path"]).pixels > 0
    assert bone.shape == image.shape
    # the vertebral bodies stand out more against their surroundings (a ring around them) in the target
    from scipy import ndimage

    ring = ndimage.binary_dilation(mask, iterations=12) & ~ndimage.binary_dilation(mask, iterations=3)
    # (through the for-presentation tone curve, which compresses the brightest bone: 1.05x here, 1.55x on raw log images)
    assert bone[mask].mean() - bone[ring].mean() > 1.02 * (image[mask].mean() - image[ring].mean())

    ingest_entries(manifest.reset_index().to_dict("records"), tmp_path / "ingest.h5", tmp_path / "r.csv")
    roi_settings = RoiSettings(canonical_height=512, train_size=(256, 256), eval_size=(128, 73))
    roi_shard(tmp_path / "ingest.h5", tmp_path / "roi.h5", tmp_path / "qc", roi_settings, tmp_path / "r2.csv")
    prep_shard(tmp_path / "roi.h5", tmp_path / "prep.h5", PrepParams())
    for split, finite in (("train", True), ("val", False)):
        crops = find_crops([tmp_path / "prep.h5"], split)
        assert len(crops) == 2
        for inputs, hfc, target in (CropDataset(crops, with_bone=True)[i] for i in range(2)):
            assert target.shape == hfc.shape
            assert bool(torch.isfinite(target).all()) is finite
            if finite:
                assert 0 <= float(target.min()) and float(target.max()) <= 1
                assert np.corrcoef(target.flatten(), inputs[0].flatten())[0, 1] > 0.3  # the same view
    assert len(CropDataset(find_crops([tmp_path / "prep.h5"], "train"))[0]) == 2  # without with_bone, as before
