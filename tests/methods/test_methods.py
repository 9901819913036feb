"""Baselines: one interface, and the property each method must have."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from tiny_models import TINY_LED

from xvertnet.errors import XvertnetError
from xvertnet.methods import REGISTRY, get_method
from xvertnet.methods.farbman import wls_decomposition
from xvertnet.methods.madmad import synthetic_sample
from xvertnet.methods.zerodce import DceNet, light_enhancement_curve

SMALL = {
    "zerodce": {"steps": 5, "patch": 32},
    "madmad": {"steps": 5, "patch": 32},
    "zssr": {"steps": 5, "patch": 24},
    "lut-mapping": {"steps": 5, "features": 8},
    "lut-mapping-bone": {"steps": 5, "features": 8},
    "led": {**TINY_LED, "gan_steps": 2},
    "srcnn": {"steps": 3},
    "vdsr": {"steps": 3, "depth": 4},
    "vdsr-dehaze": {"steps": 3, "depth": 4, "dehaze_steps": 3, "dehaze_patch": 32},
}


def _radiograph_like(shape=(96, 64), seed=0):
    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.random(shape), 3)
    image[:, shape[1] // 2 - 6 : shape[1] // 2 + 6] += 0.2
    image += 0.05 * (np.sin(np.arange(shape[0]) / 3)[:, None] > 0.8)
    image = (image - image.min()) / (image.max() - image.min())
    return (0.4 + 0.2 * image).astype(np.float32)  # low contrast, like the demo's low_contrast DRRs


def local_contrast(image, block=8):
    return float(ndimage.generic_filter(image, np.std, size=block)[::block, ::block].mean())


# XVertNet's own methods need trained models or an image's crops: tests/model/test_train_enhance.py, tests/reporting/test_study.py.
BASELINES = sorted(name for name in REGISTRY if not name.startswith("xvertnet"))


@pytest.mark.parametrize("name", BASELINES)
def test_every_method_keeps_shape_and_range(tmp_path, name):
    method = get_method(name, SMALL.get(name))
    image = _radiograph_like()
    if method.trainable:
        crops = [_radiograph_like(seed=s) for s in range(3)]
        if method.training_target:  # (crop, target) pairs
            crops = [(crop, 1 - crop) for crop in crops]
        metadata = method.fit(crops, tmp_path / name)
        assert metadata["model_sha256"] and (tmp_path / name / "model.pt").is_file()
    output = method(image)
    assert output.shape == image.shape and output.dtype == np.float32
    assert 0.0 <= output.min() and output.max() <= 1.0 and np.isfinite(output).all()


def test_registry_rejects_unknown_names_and_parameters():
    with pytest.raises(XvertnetError, match="unknown method 'sharpen'"):
        get_method("sharpen")
    with pytest.raises(XvertnetError, match=r"clahe: unknown parameters \['clip'\]"):
        get_method("clahe", {"clip": 0.1})


def test_clahe_raises_local_contrast():
    image = _radiograph_like()
    assert local_contrast(get_method("clahe")(image)) > 1.5 * local_contrast(image)


def test_farbman_layers_sum_back_to_the_input_with_unit_boosts():
    image = _radiograph_like().astype(np.float64)
    base, details = wls_decomposition(image, [0.125, 1.0, 8.0])
    np.testing.assert_allclose(base + sum(details), image, atol=1e-12)
    identity = get_method("farbman", {"boosts": [1.0, 1.0, 1.0]})(image)
    np.testing.assert_allclose(identity, image, atol=1e-6)
    boosted = get_method("farbman")(image)
    assert local_contrast(boosted) > local_contrast(image)


def test_zero_dce_curves_are_monotone_and_keep_the_unit_interval():
    x = torch.linspace(0, 1, 201).reshape(1, 1, 1, 201).repeat(1, 1, 5, 1)
    for alpha in (-1.0, -0.5, 0.0, 0.5, 1.0):
        curves = torch.full((1, 8, 5, 201), alpha)
        y = light_enhancement_curve(x, curves)
        assert torch.all(y[..., 1:] >= y[..., :-1] - 1e-7), alpha
        assert y.min() >= 0 and y.max() <= 1 + 1e-7
        assert y[..., 0].abs().max() < 1e-7 and (y[..., -1] - 1).abs().max() < 1e-6  # 0 -> 0, 1 -> 1
    network = DceNet()
    enhanced, curves = network(torch.rand(2, 1, 32, 32))
    assert curves.abs().max() <= 1 and enhanced.min() >= 0 and enhanced.max() <= 1


def test_zero_dce_training_lowers_its_loss_and_round_trips(tmp_path):
    method = get_method("zerodce", {"steps": 60, "patch": 32, "lr": 1e-3})
    crops = [_radiograph_like(seed=s) for s in range(4)]
    metadata = method.fit(crops, tmp_path / "z")
    assert metadata["last_loss"] < metadata["first_loss"]
    reloaded = get_method("zerodce", {"steps": 60, "patch": 32, "lr": 1e-3, "seed": 5})
    reloaded.load(tmp_path / "z")
    np.testing.assert_allclose(reloaded(crops[0]), method(crops[0]), atol=1e-6)


def test_zssr_reproduces_a_clean_image_it_was_trained_on():
    clean = ndimage.gaussian_filter(np.random.default_rng(2).random((64, 64)), 4)
    clean = ((clean - clean.min()) / (clean.max() - clean.min())).astype(np.float32)
    output = get_method("zssr", {"steps": 150})(clean)
    psnr = 10 * np.log10(1.0 / np.mean((output - clean) ** 2))
    assert psnr > 35, psnr


def test_madmad_branches_sum_to_the_input_and_synthetic_data_adds_up(tmp_path):
    image, background, structures = synthetic_sample(np.random.default_rng(0), 48)
    np.testing.assert_allclose(background + structures, image, atol=1e-6)
    method = get_method("madmad", {"steps": 30, "patch": 32})
    method.fit([], tmp_path / "m")
    radiograph = _radiograph_like()
    background, structures = method.decompose(radiograph)
    np.testing.assert_allclose(background + structures, radiograph, atol=1e-5)
    gain_one = get_method("madmad", {"steps": 30, "patch": 32, "gain": 1.0})
    gain_one.load(tmp_path / "m")
    np.testing.assert_allclose(gain_one(radiograph), radiograph, atol=1e-5)


def test_preprocessed_is_the_anchored_network_before_training():
    import torch

    from xvertnet.model.network import ModelConfig, XVertNet
    from xvertnet.preprocessing.preprocess import PrepParams, preprocess

    image = _radiograph_like()
    result = preprocess(image, PrepParams())
    output = get_method("preprocessed")(image)
    np.testing.assert_allclose(output, np.clip(result["Xp"], 0, 1), atol=1e-6)
    model = XVertNet(ModelConfig(base_width=4, depth=2, output_head="anchored")).eval()
    size = (image.shape[0] // 4 * 4, image.shape[1] // 4 * 4)
    xp = torch.from_numpy(result["Xp"][: size[0], : size[1]].astype(np.float32))[None, None]
    hfc = torch.from_numpy(result["Y"][: size[0], : size[1]].astype(np.float32))[None, None]
    with torch.no_grad():
        start, _ = model(xp, hfc)
    inside = (xp > 1e-3) & (xp < 1 - 1e-3)  # away from the logit clamp
    np.testing.assert_allclose(start[inside].numpy(), xp[inside].numpy(), atol=1e-5)


def test_each_method_is_registered_by_the_module_the_lazy_lookup_imports():
    import subprocess
    import sys

    from xvertnet.method_catalogue import CATALOGUE
    from xvertnet.methods import MODULE_OF

    assert set(REGISTRY) == set(MODULE_OF) == set(CATALOGUE)
    for name, cls in REGISTRY.items():
        assert cls.__module__ == f"xvertnet.methods.{MODULE_OF[name]}", name
    # A job running CLAHE (or the original) does not pay for importing torch and the learned methods.
    probe = "import sys; from xvertnet.methods import get_method; get_method('clahe'); get_method('original'); "
    probe += "print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"
