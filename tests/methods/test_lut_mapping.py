"""Interpretable LUT mapping: the remap formula, its ground-truth generator and the network's shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xvertnet.methods.lut_mapping.model import (
    EPS,
    MAPS,
    LutMappingNet,
    PresentationChange,
    global_window,
    lut_mapping_loss,
    random_presentation,
    regional_lut,
    remap,
    standard_presentation,
)


def test_the_remap_formula_by_hand():
    assert regional_lut(0.5, 2.0, -0.25) == pytest.approx(0.75)  # Eq. L1, linear part
    assert regional_lut(0.9, 2.0, 0.0) == pytest.approx(1 - EPS) and regional_lut(0.1, 1.0, -0.5) == pytest.approx(
        EPS
    )  # flat parts
    assert global_window(0.75, 0.5, 1.0) == pytest.approx(0.75)  # the identity window
    assert global_window(0.3, 0.3, 0.4) == pytest.approx(0.5)  # the centre goes to 0.5
    assert global_window(0.75, 0.5, 0.5) == pytest.approx(0.9)  # sigmoid(2 ln 3) = 9 / 10
    assert global_window(0.25, 0.5, 0.5) == pytest.approx(0.1)
    assert remap(0.4, 1.5, 0.15, 0.5, 0.5) == pytest.approx(0.9)  # 1.5 * 0.4 + 0.15 = 0.75, then as above
    # Slope at the centre 1 / (4 ww wc (1 - wc)): 1 / ww at wc = 0.5, like a linear window of width ww.
    h = 1e-6
    slope = lambda wc, ww: (global_window(wc + h, wc, ww) - global_window(wc - h, wc, ww)) / (2 * h)  # noqa: E731
    assert slope(0.5, 0.8) == pytest.approx(1 / 0.8, rel=1e-5)
    assert slope(0.6, 0.8) == pytest.approx(1 / (4 * 0.8 * 0.6 * 0.4), rel=1e-5)
    # numpy and torch agree.
    x = np.linspace(0, 1, 11)
    assert np.allclose(remap(torch.tensor(x), 1.2, -0.1, 0.45, 0.7).numpy(), remap(x, 1.2, -0.1, 0.45, 0.7))


def test_the_regional_lut_and_the_remap_are_monotonic():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 2001)
    for _ in range(50):
        a, b, wc, ww = rng.uniform(0.1, 5), rng.uniform(-1, 1), rng.uniform(0.05, 0.95), rng.uniform(0.1, 5)
        assert np.all(np.diff(regional_lut(x, a, b)) >= 0)
        assert np.all(np.diff(remap(x, a, b, wc, ww)) >= 0)


def test_identity_maps_give_the_identity():
    x = np.random.default_rng(1).uniform(EPS, 1 - EPS, (40, 30))
    assert np.allclose(remap(x, 1.0, 0.0, 0.5, 1.0), x, atol=1e-12)
    # The untrained network starts at the identity maps (zero head), at every downscale.
    image = torch.from_numpy(x.astype(np.float32))[None, None]
    output, maps = LutMappingNet(downscale=8, features=8)(image)
    assert torch.allclose(output, image, atol=1e-5)
    assert torch.allclose(maps["a"], torch.ones_like(image)) and torch.allclose(maps["ww"], torch.ones_like(image))


def test_the_ground_truth_generator_is_inverted_exactly_by_its_maps():
    rng = np.random.default_rng(2)
    reference = standard_presentation(np.random.default_rng(3).gamma(2.0, 1.0, (64, 48)))
    for _ in range(5):
        degraded, maps = random_presentation(reference, rng)
        assert set(maps) == set(MAPS) and all(m.shape == reference.shape for m in maps.values())
        assert (
            np.ptp(maps["wc"]) == 0 and np.ptp(maps["ww"]) == 0 and np.ptp(maps["a"]) > 0
        )  # global window, regional LUT
        r = maps["a"] * degraded + maps["b"]
        inside = (degraded > 0) & (degraded < 1) & (r > EPS) & (r < 1 - EPS)  # where neither step clipped
        assert inside.mean() > 0.9
        restored = remap(degraded.astype(np.float64), maps["a"], maps["b"], maps["wc"], maps["ww"])
        assert np.abs(restored - reference)[inside].max() < 1e-5
    # The change is not small: inputs differ from the reference.
    assert np.abs(degraded - reference).mean() > 0.02


def test_the_standard_presentation_puts_the_percentiles_in_place():
    image = np.random.default_rng(4).normal(0.3, 0.01, (100, 100))
    standard = standard_presentation(image)
    assert np.percentile(standard, 0.5) == pytest.approx(0.05, abs=1e-3) and np.percentile(
        standard, 99.5
    ) == pytest.approx(0.95, abs=1e-3)
    assert np.all(standard_presentation(np.full((5, 5), 0.2)) == 0.5)  # a flat image: mid-grey, no division by zero


@pytest.mark.parametrize("downscale", [4, 8, 16])
def test_shapes_at_each_downscale_factor(downscale):
    net = LutMappingNet(downscale=downscale, features=8)
    for shape in ((128, 73), (100, 130), (256, 256)):
        image = torch.rand(2, 1, *shape)
        output, maps = net(image)
        assert output.shape == image.shape and all(maps[k].shape == image.shape for k in MAPS)


def test_the_loss_is_the_papers_eq_1_and_its_gradients_are_finite():
    torch.manual_seed(0)
    net = LutMappingNet(downscale=8, features=8)
    torch.nn.init.normal_(net.network.head.weight, std=0.1)
    rng = np.random.default_rng(5)
    reference = standard_presentation(rng.uniform(0, 1, (128, 96)))
    degraded, maps = random_presentation(reference, rng, PresentationChange())
    as_tensor = lambda a: torch.from_numpy(np.asarray(a, np.float32))[None, None]  # noqa: E731
    output, predicted = net(as_tensor(degraded))
    terms = lut_mapping_loss(output, predicted, as_tensor(reference), {k: as_tensor(v) for k, v in maps.items()})
    with torch.no_grad():
        expected = sum(float(((predicted[k] - as_tensor(maps[k])) ** 2).mean()) for k in MAPS) + float(
            ((output - as_tensor(reference)) ** 2).mean()
        )
    assert float(terms["total"].detach()) == pytest.approx(expected, rel=1e-5)
    terms["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    exact = lut_mapping_loss(
        as_tensor(reference),
        {k: as_tensor(v) for k, v in maps.items()},
        as_tensor(reference),
        {k: as_tensor(v) for k, v in maps.items()},
    )
    assert float(exact["total"]) == 0.0


def test_the_bone_configuration_trains_on_crop_and_target_pairs(tmp_path):
    """lut-mapping-bone: pairs only where a crop has a bone target, the same warp for crop and target, the image
    term alone, and a clear error naming the setting when the shards hold no targets."""
    from types import SimpleNamespace

    from synthetic_data import synthetic_shards

    from xvertnet.errors import XvertnetError
    from xvertnet.io.shard_store import TRAIN_ROIS, iter_items, open_shard_for_writing
    from xvertnet.methods import get_method, training_crops
    from xvertnet.stages import train_baseline

    plain = synthetic_shards(tmp_path / "plain", size=32)
    with pytest.raises(XvertnetError, match="target 'B'.*demo.bone_emphasis"):
        train_baseline.run(
            SimpleNamespace(data=plain, method="lut-mapping-bone", out_dir=tmp_path / "m", settings='{"steps": 1}')
        )

    with_bone = tmp_path / "bone.h5"
    with open_shard_for_writing(with_bone, stage="prep", params={}) as shard:
        for index, (image_id, arrays, attrs) in enumerate(iter_items(plain[0])):
            if index % 2:  # every other image has targets: its crops inverted, so a pair is recognisable
                arrays.update({f"{roi}/B": 1 - arrays[f"{roi}/X"] for roi in TRAIN_ROIS})
            shard.add(image_id, arrays, attrs)
    pairs = training_crops([with_bone], target="B")
    train = [attrs for i, (_, _, attrs) in enumerate(iter_items(with_bone)) if attrs["split"] == "train" and i % 2]
    assert len(pairs) == len(train) * len(TRAIN_ROIS) > 0
    assert all(np.array_equal(bone, 1 - crop) for crop, bone in pairs)
    assert len(training_crops([with_bone])) == 3 * len(TRAIN_ROIS)  # without a target: every training crop

    method = get_method(
        "lut-mapping-bone",
        {"steps": 3, "batch_size": 2, "features": 4, "levels": 2, "downscale": 4, "rotation_deg": 0.0, "shear": 0.0},
    )
    rng = np.random.default_rng(1)
    asym = np.add.outer(np.linspace(0, 1, 32) ** 2, np.linspace(0, 0.5, 32)).astype(np.float32)
    inputs, references, maps = method.training_batch([(asym, asym)], rng)
    assert maps is None and inputs.shape == references.shape == (2, 1, 32, 32)
    for given, reference in zip(inputs[:, 0].numpy(), references[:, 0].numpy()):
        variants = [np.rot90(v, k) for v in (asym, asym[:, ::-1]) for k in range(4)]
        matches = [
            i
            for i, v in enumerate(variants)
            if np.allclose(reference, standard_presentation(np.ascontiguousarray(v)), atol=1e-6)
        ]
        assert matches, "the reference is a dihedral copy of the target in the standard presentation"
        agreement = [np.corrcoef(given.ravel(), v.ravel())[0, 1] for v in variants]
        assert int(np.argmax(agreement)) in matches, "the input went through the same flip and turn as its target"

    metadata = method.fit([(asym, 1 - asym)] * 2, tmp_path / "model")
    assert metadata["method"] == "lut-mapping-bone" and set(metadata["last_terms"]) == {"image", "total"}
    assert np.isfinite(metadata["last_loss"])
