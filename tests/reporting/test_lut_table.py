"""The GE seed's Table 1 models: shapes, starting points, and a tiny run of the table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xvertnet.methods.lut_mapping.model import PresentationChange
from xvertnet.reporting.lut_table import MODELS, PAPER, LutBank, LutTableSettings, evaluate, table_markdown, train_model


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_keeps_the_shape_and_the_range(name):
    torch.manual_seed(0)
    image = torch.rand(2, 1, 160, 144)
    with torch.no_grad():
        output, maps = MODELS[name]()(image)
    assert output.shape == image.shape and float(output.min()) >= 0 and float(output.max()) <= 1
    assert maps is None or all(m.shape == image.shape for m in maps.values())


def test_the_lut_bank_starts_near_the_identity_and_interpolates_linearly():
    torch.manual_seed(0)
    bank = LutBank()
    x = torch.linspace(0, 1, 101).view(1, 1, 1, 101)
    output, _ = bank(x.expand(1, 1, 64, 101).contiguous())
    assert torch.allclose(output[0, 0, 0], x.flatten(), atol=0.02)  # the mean of 8 bases at identity + 0.01 noise
    with torch.no_grad():  # one basis, a known LUT: y = x^2 at the nodes, linear between them
        bank.luts.copy_(torch.linspace(0, 1, 33).pow(2).repeat(8, 1))
    output, _ = bank(torch.full((1, 1, 64, 64), 0.5 / 32 * 1 + 0.0))  # between nodes 0 and 1: (0 + (1/32)^2) / 2
    assert float(output.mean()) == pytest.approx(0.5 * (1 / 32) ** 2, rel=1e-4)


def test_a_tiny_table_has_every_method_and_the_paper_beside_it():
    rng = np.random.default_rng(0)
    crops = [np.clip(rng.normal(0.5, 0.15, (128, 128)), 0, 1).astype(np.float32) for _ in range(4)]
    images = {"held_out": np.clip(rng.normal(0.5, 0.15, (160, 144)), 0, 1).astype(np.float32)}
    settings = LutTableSettings(steps=2, batch_size=2, changes_per_image=2)
    models, seconds = {}, {}
    for name in ("dlbc", "lut-bank", "lut-mapping-ds8"):
        models[name], seconds[name] = train_model(name, crops, settings, PresentationChange())
    rows = evaluate(models, images, settings, PresentationChange())
    assert set(rows["method"]) == {"input", "dlbc", "lut-bank", "lut-mapping-ds8"} and len(rows) == 4 * 2
    assert rows["psnr"].between(0, 100).all() and rows["ssim"].between(-1, 1).all()
    markdown = table_markdown(rows, seconds)
    assert f"{PAPER['lut-mapping-ds8'][0]:.2f}" in markdown and "n = 2" in markdown


def test_training_images_are_centre_cropped_to_one_shape():
    from xvertnet.errors import XvertnetError
    from xvertnet.reporting.lut_table import common_shape

    images = [np.arange(12 * 10, dtype=np.float32).reshape(12, 10), np.zeros((10, 14), np.float32)]
    cropped = common_shape(images)
    assert [c.shape for c in cropped] == [(10, 10), (10, 10)]
    assert np.array_equal(cropped[0], images[0][1:11, :])  # 12 rows -> the middle 10
    with pytest.raises(XvertnetError, match="training-split"):
        common_shape([])
