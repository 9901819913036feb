"""The network (shapes, guidance layer, heads) and the losses (Eqs. 8-13)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xvertnet.model.losses import (
    XVertNetLoss,
    band_pass,
    band_pass_contrast_loss,
    band_pass_energy,
    blind_spot_input,
    blind_spot_loss,
    blind_spot_mask,
    display_window,
    displayed_band_cnr,
    displayed_cnr_loss,
    feature_loss,
    feature_map_entropy,
    gradient_correlation,
    gradient_correlation_loss,
    most_informative_map,
    noise_probe,
    normalised_cross_correlation,
)
from xvertnet.model.network import ModelConfig, XVertNet, count_parameters, pad_to_multiple


def _images(batch=2, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, size, size, generator=generator), torch.randn(batch, 1, size, size, generator=generator)


def test_shapes_and_the_papers_128_last_layer_maps():
    model = XVertNet(ModelConfig(base_width=64, depth=1))
    inputs, hfc = _images(size=16)
    output, features = model(inputs, hfc)
    assert output.shape == (2, 1, 16, 16) and features.shape == (2, 128, 16, 16)  # 64 network + 64 GL maps
    assert 0 <= output.min() and output.max() <= 1


def test_paper_scale_size():
    # Base 64, depth 4: a U-Net of about 31 M parameters plus the guidance layers.
    parameters = count_parameters(XVertNet(ModelConfig(base_width=64, depth=4)))
    assert 31e6 < parameters < 40e6


def test_bad_inputs_are_named():
    model = XVertNet(ModelConfig(base_width=4, depth=2))
    inputs, hfc = _images(size=32)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(inputs[..., :30, :30], hfc[..., :30, :30])
    with pytest.raises(ValueError, match="expected inputs of shape"):
        model(torch.cat([inputs, inputs], 1), hfc)
    with pytest.raises(ValueError, match="expected hfc of shape"):
        model(inputs, hfc[..., :16, :16])
    with pytest.raises(ValueError, match="output_head"):
        ModelConfig(output_head="linear")


def test_anchored_head_starts_at_the_identity():
    model = XVertNet(ModelConfig(base_width=4, depth=2, output_head="anchored")).eval()
    inputs, hfc = _images()
    output, _ = model(inputs.clamp(0.01, 0.99), hfc)
    torch.testing.assert_close(output, inputs.clamp(0.01, 0.99), atol=1e-5, rtol=0)


def test_guidance_weight_zero_silences_the_guidance_maps():
    model = XVertNet(ModelConfig(base_width=4, depth=2, gl_weight=0.0)).eval()
    inputs, hfc = _images()
    _, features = model(inputs, hfc)
    assert torch.count_nonzero(features[:, 4:]) == 0 and torch.count_nonzero(features[:, :4]) > 0


def test_pad_to_multiple_keeps_the_original_region():
    tensor = torch.arange(2 * 1 * 10 * 7, dtype=torch.float32).reshape(2, 1, 10, 7)
    padded, size = pad_to_multiple(tensor, 8)
    assert padded.shape == (2, 1, 16, 8) and size == (10, 7)
    torch.testing.assert_close(padded[..., :10, :7], tensor)


# ------------------------------------------------------------------ losses


def test_gradient_correlation_of_an_image_with_itself_and_its_negative():
    image, _ = _images()
    torch.testing.assert_close(gradient_correlation(image, image), torch.ones(2))
    torch.testing.assert_close(gradient_correlation(image, -image), -torch.ones(2))
    assert float(gradient_correlation_loss(image, image)) == pytest.approx(0.0, abs=1e-6)


def test_ncc_hand_values():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[2.0, 4.0, 6.0, 8.0]])
    torch.testing.assert_close(normalised_cross_correlation(a, b), torch.tensor([1.0]))
    torch.testing.assert_close(
        normalised_cross_correlation(a, torch.tensor([[1.0, -1.0, 1.0, -1.0]])), torch.tensor([-0.4472136])
    )


def test_gradients_are_finite_on_a_constant_output():
    flat = torch.full((1, 1, 16, 16), 0.5, requires_grad=True)
    _, hfc = _images(batch=1, size=16)
    loss = gradient_correlation_loss(flat, hfc)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(flat.grad).all()


def test_gradcheck_of_gradient_correlation():
    a = torch.rand(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    b = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    # The NCC runs in fp32 by design (docs/method.md); check the float64 algebra against finite differences loosely.
    assert torch.autograd.gradcheck(lambda x: gradient_correlation(x, b).double(), (a,), eps=1e-3, atol=1e-2)


def test_entropy_selects_the_known_map():
    stack = torch.zeros(1, 3, 4, 4)
    stack[0, 1, :2] = 1.0  # two values, half each: ln 2
    stack[0, 2] = torch.arange(16.0).reshape(4, 4) / 15  # four bins equally filled: ln 4
    entropy = feature_map_entropy(stack, bins=4)
    torch.testing.assert_close(entropy, torch.tensor([[0.0, math.log(2), math.log(4)]]))
    torch.testing.assert_close(most_informative_map(stack, bins=4), stack[:, 2:3])


def test_feature_loss_is_mse_to_the_chosen_map_and_module_equals_functions():
    output, hfc = _images(batch=1, size=8)
    features = torch.rand(1, 5, 8, 8)
    features[0, 3] = torch.linspace(0, 1, 64).reshape(8, 8)  # the most even spread: highest entropy
    assert float(feature_loss(output, features, bins=16)) == pytest.approx(
        float(((output - features[:, 3:4]) ** 2).mean())
    )
    terms = XVertNetLoss(gc_weight=1.0, feature_weight=0.5, bins=16)(output, hfc, features, with_feature_loss=True)
    expected = gradient_correlation_loss(output, hfc) + 0.5 * feature_loss(output, features, bins=16)
    torch.testing.assert_close(terms["total"], expected)
    assert "l2" not in XVertNetLoss()(output, hfc, features, with_feature_loss=False)


def nyquist_share(image: np.ndarray) -> float:
    """Share of an image's high-pass energy on the Nyquist row and column of its spectrum (a checkerboard's)."""
    from scipy import ndimage

    detail = image - ndimage.gaussian_filter(image, 2)
    power = np.abs(np.fft.fft2(detail)) ** 2
    height, width = power.shape
    return float(
        (power[height // 2, :].sum() + power[:, width // 2].sum() - power[height // 2, width // 2]) / power.sum()
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bilinear_upsampling_leaves_no_checkerboard_where_the_transposed_conv_does(seed):
    from scipy import ndimage

    image = ndimage.gaussian_filter(np.random.default_rng(seed).random((128, 128)), 6)
    image = ((image - image.min()) / (image.max() - image.min()) * 0.6 + 0.2).astype(np.float32)
    x = torch.from_numpy(image)[None, None]
    hfc = torch.from_numpy(image - ndimage.gaussian_filter(image, 3))[None, None]
    shares = {}
    for upsample in ("bilinear", "transpose"):
        torch.manual_seed(seed)
        model = XVertNet(ModelConfig(base_width=8, depth=3, upsample=upsample)).eval()
        with torch.no_grad():
            shares[upsample] = nyquist_share(model(x, hfc)[0][0, 0].numpy())
    assert nyquist_share(image) < 0.01
    assert shares["bilinear"] < 0.05 < 0.5 < shares["transpose"], shares  # 2 of 128 lines: about 1.6 % for no pattern


# -- the design study's terms (docs/method.md, Eqs. S1, S2) -----------------------------------


def test_blind_spot_mask_is_one_pixel_per_cell_and_the_input_gets_the_neighbours_mean():
    mask = blind_spot_mask((3, 1, 8, 12), 4, torch.Generator().manual_seed(1))
    assert mask.shape == (3, 1, 8, 12) and mask.dtype == torch.bool
    assert mask.sum(dim=(1, 2, 3)).tolist() == [6, 6, 6]  # (8 / 4) * (12 / 4) cells
    image = torch.zeros(1, 1, 5, 5)
    image[0, 0, 1, 1], image[0, 0, 2, 3] = 8.0, 4.0
    centre = torch.zeros(1, 1, 5, 5, dtype=torch.bool)
    centre[0, 0, 2, 2] = True
    replaced = blind_spot_input(image, centre)
    assert replaced[0, 0, 2, 2] == pytest.approx((8.0 + 4.0) / 8.0)  # the 8 neighbours' mean, the centre left out
    unchanged = ~centre
    assert torch.equal(replaced[unchanged], image[unchanged])


def test_blind_spot_loss_hand_values():
    output = torch.zeros(1, 1, 4, 4)
    masked = output.clone()
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[0, 0, 0, 0] = mask[0, 0, 2, 2] = True
    masked[0, 0, 0, 0], masked[0, 0, 2, 2], masked[0, 0, 1, 1] = 0.3, 0.4, 9.0  # (1, 1) is not masked: ignored
    assert float(blind_spot_loss(output, masked, mask)) == pytest.approx(math.sqrt((0.09 + 0.16) / 2), rel=1e-6)


def test_blind_spot_loss_penalises_a_network_that_copies_the_pixel_and_not_one_that_smooths():
    generator = torch.Generator().manual_seed(0)
    noisy = torch.rand(2, 1, 16, 16, generator=generator)
    mask = blind_spot_mask(noisy.shape, 4, generator)
    identity = blind_spot_loss(noisy, blind_spot_input(noisy, mask), mask)
    smoothing = lambda x: torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)  # noqa: E731
    # a 3x3 mean still sees the centre pixel, with weight 1/9 instead of 1
    assert (
        float(blind_spot_loss(smoothing(noisy), smoothing(blind_spot_input(noisy, mask)), mask)) < float(identity) / 5
    )


def test_band_pass_energy_and_loss_hand_values():
    flat = torch.full((1, 1, 24, 24), 0.5)
    assert float(band_pass(flat, (1.0, 3.0)).abs().max()) < 1e-6  # a DoG passes no constant
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 1, 24, 24, generator=generator)
    energy = band_pass_energy(image, (1.0, 3.0))
    assert torch.allclose(band_pass_energy(3 * image + 0.2, (1.0, 3.0)), 3 * energy, rtol=1e-5)  # linear, offset-free
    # output = 1.5 x the reference: log 2 - log 1.5 short of the gain 2; at 3x the gain is reached: 0
    assert float(band_pass_contrast_loss(1.5 * image, image, sigmas=(1.0, 3.0), gain=2.0)) == pytest.approx(
        math.log(2 / 1.5), rel=1e-4
    )
    assert float(band_pass_contrast_loss(3.0 * image, image, sigmas=(1.0, 3.0), gain=2.0)) == 0.0
    with pytest.raises(ValueError, match="sigmas"):
        band_pass(image, (3.0, 1.0))


def test_gradcheck_of_the_blind_spot_and_band_pass_terms():
    generator = torch.Generator().manual_seed(2)
    output = torch.rand(1, 1, 8, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    masked = torch.rand(1, 1, 8, 8, generator=generator, dtype=torch.float64)
    mask = blind_spot_mask(output.shape, 2, generator)
    assert torch.autograd.gradcheck(lambda o: blind_spot_loss(o, masked, mask).double(), (output,), eps=1e-6, atol=1e-4)
    # band_pass works in fp32; check the DoG energy's gradient against finite differences at that precision
    image = torch.rand(1, 1, 12, 12, generator=generator) + 0.1
    reference = torch.rand(1, 1, 12, 12, generator=generator)
    image.requires_grad_(True)
    loss = band_pass_contrast_loss(image, reference, sigmas=(1.0, 2.0), gain=50.0)
    (grad,) = torch.autograd.grad(loss, image)
    step = 1e-3
    for index in [(0, 0, 3, 4), (0, 0, 6, 6), (0, 0, 0, 11)]:
        plus, minus = image.detach().clone(), image.detach().clone()
        plus[index] += step
        minus[index] -= step
        numeric = (
            band_pass_contrast_loss(plus, reference, sigmas=(1.0, 2.0), gain=50.0)
            - band_pass_contrast_loss(minus, reference, sigmas=(1.0, 2.0), gain=50.0)
        ) / (2 * step)
        assert float(grad[index]) == pytest.approx(float(numeric), rel=2e-2, abs=1e-4)


@pytest.mark.parametrize("kind", ["flat", "noisy"])
def test_the_new_terms_have_finite_gradients_on_flat_and_noisy_inputs(kind):
    generator = torch.Generator().manual_seed(3)
    image = torch.full((2, 1, 16, 16), 0.5) if kind == "flat" else torch.rand(2, 1, 16, 16, generator=generator)
    model = XVertNet(ModelConfig(base_width=4, depth=2, output_head="anchored"))
    hfc = torch.zeros_like(image) if kind == "flat" else torch.randn(2, 1, 16, 16, generator=generator)
    output, features = model(image, hfc)
    mask = blind_spot_mask(image.shape, 4, generator)
    masked_output, _ = model(blind_spot_input(image, mask), blind_spot_input(hfc, mask))
    terms = XVertNetLoss(band_pass_weight=1.0, band_pass_sigmas=(1.0, 3.0))(
        output, hfc, features, with_feature_loss=True, reference=image
    )
    total = terms["total"] + blind_spot_loss(output, masked_output, mask)
    total.backward()
    assert torch.isfinite(total)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bone_prior_loss_hand_values_and_gradients():
    from xvertnet.model.losses import bone_prior_loss

    generator = torch.Generator().manual_seed(4)
    output = torch.rand(3, 1, 8, 8, generator=generator)
    target = 2.0 * output + 1.0  # the same pattern, another scale and offset: NCC 1
    assert float(bone_prior_loss(output, target)) == pytest.approx(0.0, abs=1e-5)
    assert float(bone_prior_loss(output, -target)) == pytest.approx(2.0, abs=1e-5)
    mixed = target.clone()
    mixed[1] = -mixed[1]
    mixed[2] = float("nan")  # no target for this crop: left out of the mean
    assert float(bone_prior_loss(output, mixed)) == pytest.approx(1.0, abs=1e-5)
    assert bone_prior_loss(output, torch.full_like(output, float("nan"))) is None
    for start in (torch.full((2, 1, 8, 8), 0.5), torch.rand(2, 1, 8, 8, generator=generator)):  # flat and noisy
        start.requires_grad_(True)
        loss = bone_prior_loss(start, torch.rand(2, 1, 8, 8, generator=generator))
        (grad,) = torch.autograd.grad(loss, start)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    noisy = torch.rand(1, 1, 6, 6, generator=generator, requires_grad=True)
    reference = torch.rand(1, 1, 6, 6, generator=generator)
    (grad,) = torch.autograd.grad(bone_prior_loss(noisy, reference), noisy)
    step = 1e-3
    for index in [(0, 0, 1, 2), (0, 0, 4, 5)]:
        plus, minus = noisy.detach().clone(), noisy.detach().clone()
        plus[index] += step
        minus[index] -= step
        numeric = (bone_prior_loss(plus, reference) - bone_prior_loss(minus, reference)) / (2 * step)
        assert float(grad[index]) == pytest.approx(float(numeric), rel=2e-2, abs=1e-4)


def _scene_and_probe(seed=5, size=32):
    """A smooth image (structure at a few pixels' scale) and a noise probe of 5 % of its spread."""
    generator = torch.Generator().manual_seed(seed)
    image = band_pass(torch.rand(2, 1, size, size, generator=generator), (1.0, 6.0)) + 0.5
    return image, noise_probe(image, 0.05, generator)


def test_displayed_cnr_loss_hand_values():
    """Eq. S4: a plain gain is not rewarded (the window cancels it), halving the noise that reaches the display at
    the vertebral scale reaches the gain 2, doubling it costs log 2 more than doing nothing."""
    image, noise = _scene_and_probe()
    sigmas, gain = (1.0, 3.0), 2.0

    def loss(output, noisy_output):
        return float(displayed_cnr_loss(output, noisy_output, image, image + noise, sigmas=sigmas, gain=gain))

    assert loss(image, image + noise) == pytest.approx(math.log(2.0), rel=1e-3)  # the identity
    assert loss(3.0 * image - 0.4, 3.0 * (image + noise) - 0.4) == pytest.approx(math.log(2.0), rel=1e-3)  # a gain
    # half the noise: CNR x 2 (within what the window's clipped tails, 2 % of the pixels, change)
    assert loss(image, image + 0.5 * noise) == pytest.approx(0.0, abs=5e-3)
    assert loss(image, image + 2.0 * noise) == pytest.approx(math.log(4.0), rel=5e-3)  # twice the noise
    # contrast at the scale, bought without noise: the ratio of the band-pass energies
    sharper = image + 0.5 * band_pass(image, sigmas)
    expected = math.log(2.0) - math.log(
        float(band_pass_energy(sharper, sigmas)[0] / band_pass_energy(image, sigmas)[0])
    )
    single = float(
        displayed_cnr_loss(
            sharper[:1], sharper[:1] + noise[:1], image[:1], image[:1] + noise[:1], sigmas=sigmas, gain=2
        )
    )
    assert single == pytest.approx(max(expected, 0.0), rel=2e-2)
    low, high = display_window(image)
    assert low.shape == (2, 1, 1, 1) and bool((high > low).all())
    with pytest.raises(ValueError, match="gain must be > 0"):
        displayed_cnr_loss(image, image, image, image, sigmas=sigmas, gain=0.0)


def test_displayed_cnr_counts_a_saturated_region_as_lost_signal():
    """Pixels beyond the display window (saturated) neither add contrast nor earn a gradient: nothing a network does
    there can raise the term."""
    image, noise = _scene_and_probe(seed=6)
    low, high = display_window(image)
    middle = 0.5 * (low + high)
    output = image.clone().requires_grad_(True)
    cnr = displayed_band_cnr(output, image + noise, (1.0, 3.0), window=(low, middle)).sum()
    (grad,) = torch.autograd.grad(cnr, output)
    saturated = image > middle
    assert bool(saturated.any()) and float(grad[saturated].abs().max()) == 0.0
    assert float(grad[~saturated].abs().max()) > 0.0


def test_displayed_cnr_gradient_matches_finite_differences_and_is_finite_through_the_network():
    image, noise = _scene_and_probe(seed=7, size=12)
    output = (1.2 * image).requires_grad_(True)
    reference, noisy_reference = image, image + noise
    noisy_output = 1.2 * (image + 1.5 * noise)

    def loss(values):
        return displayed_cnr_loss(values, noisy_output, reference, noisy_reference, sigmas=(1.0, 2.0), gain=50.0)

    (grad,) = torch.autograd.grad(loss(output), output)
    step = 1e-3
    for index in [(0, 0, 3, 4), (1, 0, 6, 6), (0, 0, 5, 2)]:
        plus, minus = output.detach().clone(), output.detach().clone()
        plus[index] += step
        minus[index] -= step
        numeric = (loss(plus) - loss(minus)) / (2 * step)
        assert float(grad[index]) == pytest.approx(float(numeric), rel=5e-2, abs=2e-4)
    generator = torch.Generator().manual_seed(8)
    for start in (torch.full((2, 1, 16, 16), 0.5), torch.rand(2, 1, 16, 16, generator=generator)):  # flat, noisy
        model = XVertNet(ModelConfig(base_width=4, depth=2, output_head="anchored"))
        hfc = torch.zeros_like(start)
        probe = noise_probe(start, 0.05, generator)
        out, _ = model(start, hfc)
        noisy_out, _ = model(start + probe, hfc)
        total = displayed_cnr_loss(out, noisy_out, start, start + probe, sigmas=(1.0, 3.0), gain=2.0)
        total.backward()
        assert torch.isfinite(total)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
