"""Burned-in labels do not glow: found, hidden from the network, put back unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from xvertnet.preprocessing.burned_in import burned_in_mask, draw_side_marker, enhance_around_burned_in


def with_label(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` with a white side marker "R" burned in near its top right corner."""
    return draw_side_marker(image, 40, image.shape[1] - 90)


@pytest.fixture(scope="module")
def shipped_chain():
    from xvertnet.methods import get_method
    from xvertnet.model.whole_image import model_dirs

    return get_method("xvertnet-chain", {"models": [str(p) for p in model_dirs(None)], "device": "cpu"})


def test_the_mask_finds_a_burned_in_label_and_nothing_new_elsewhere(rg1_small):
    image = rg1_small.astype(np.float32)
    labelled, label = with_label(image)
    found = burned_in_mask(labelled) & ~burned_in_mask(image)
    assert found[label].all()  # the whole label ...
    assert not (found & ~ndimage.binary_dilation(label, iterations=2)).any()  # ... and only the label (and its rim)


def test_smooth_and_noisy_images_have_no_burned_in_mask():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:256, 0:240] / 256.0
    smooth = 0.3 + 0.4 * np.exp(-((cols - 0.5) ** 2) / 0.02) + 0.1 * rows
    noisy = np.clip(smooth + rng.normal(0, 0.03, smooth.shape), 0, 1)  # single bright outliers are noise, not labels
    assert not burned_in_mask(smooth.astype(np.float32)).any()
    assert not burned_in_mask(noisy.astype(np.float32)).any()


def test_no_glow_beside_a_burned_in_label(rg1_small, shipped_chain):
    image = rg1_small.astype(np.float32)
    labelled, label = with_label(image)
    distance = ndimage.distance_transform_edt(~label)
    beside = (distance > 3) & (distance <= 12)  # 3-12 pixels from the marker

    def glow(enhance):
        return float(np.mean(np.abs(enhance(labelled)[beside] - enhance(image)[beside])))

    unprotected = glow(lambda x: shipped_chain.chain.run(x, tile=512, overlap=64))
    protected = glow(shipped_chain.enhance_whole)
    assert unprotected > 0.02  # the network alone answers the marker with a halo (the test can fail) ...
    assert (
        protected < unprotected / 5 and protected < 0.01
    )  # ... hidden from it, the anatomy beside is enhanced as without
    out = shipped_chain.enhance_whole(labelled)
    assert out[label].mean() > out[beside].mean() + 0.2  # the marker is put back, standing out as before


def test_enhance_around_burned_in_passes_images_without_labels_through_unchanged_calls():
    image = np.linspace(0.2, 0.8, 64 * 64, dtype=np.float32).reshape(64, 64)
    seen = []
    result = enhance_around_burned_in(image, lambda x: seen.append(x) or x * 0.5)
    assert np.array_equal(seen[0], image) and np.allclose(result, image * 0.5)


def test_a_label_is_put_back_as_what_it_adds_and_nothing_else_changes(rg1_small):
    from xvertnet.preprocessing.burned_in import fill_burned_in, restore_burned_in

    image = rg1_small.astype(np.float32)
    labelled, label = with_label(image)
    mask = burned_in_mask(labelled)
    filled = fill_burned_in(labelled, mask)
    assert (
        np.array_equal(filled[~mask], labelled[~mask]) and filled[label].max() < 0.99
    )  # filled from around, not white
    enhanced = filled * 0.8
    restored = restore_burned_in(enhanced, labelled, filled)
    assert np.array_equal(restored[~mask], enhanced[~mask])
    assert np.allclose(restored[label], np.clip(enhanced[label] + 1.0 - filled[label], 0, 1))


def test_a_label_on_an_image_larger_than_the_working_height_comes_back_whole(tmp_path, rg1_path):
    """xvertnet enhance at native resolution (RG1: 1955 rows, the shipped models work at 512)."""
    from PIL import Image

    from xvertnet.io.readers import read_image
    from xvertnet.model.inference import EnhanceSettings
    from xvertnet.model.whole_image import enhance_file, model_dirs

    full = read_image(rg1_path).pixels.astype(np.float32)
    labelled, label = _scaled_marker(full)  # 120 x 88 pixels: 31 x 23 at the working height
    Image.fromarray(np.rint(labelled * 65535).astype(np.uint16)).save(tmp_path / "labelled.png")
    record = enhance_file(
        model_dirs(None), tmp_path / "labelled.png", tmp_path / "out.png", EnhanceSettings(device="cpu")
    )
    assert record["burned_in_pixels"] > 0 and "native_resolution" in record
    out = read_image(tmp_path / "out.png").pixels
    distance = ndimage.distance_transform_edt(~label)
    beside = (distance > 12) & (distance <= 40)
    # The marker is added back whole (gain 1): it stands out from its surroundings as much as in the input.
    step_in, step_out = labelled[label].mean() - labelled[beside].mean(), out[label].mean() - out[beside].mean()
    assert step_in > 0.15 and abs(step_out - step_in) < 0.05, (step_in, step_out)


def test_native_resolution_adds_a_hidden_label_back_with_gain_one():
    from skimage.transform import resize

    from xvertnet.model.inference import native_resolution
    from xvertnet.preprocessing.burned_in import fill_burned_in

    rows, cols = np.mgrid[0:800, 0:720] / 800.0
    full = (0.3 + 0.3 * rows + 0.1 * np.sin(cols * 20)).astype(np.float32)
    full, label = _scaled_marker(full, row=100, col=400)  # 1 % of the image
    low = resize(full, (400, 360), anti_aliasing=True).astype(np.float32)  # strokes 16 -> 8 pixels wide
    mask = burned_in_mask(low)
    filled = fill_burned_in(low, mask)
    halved = 0.5 * filled  # a "network" with gain 0.5 everywhere
    kept = native_resolution(full, filled, halved, keep=mask)
    plain = native_resolution(full, filled, halved)
    step = lambda out: out[label].mean() - np.median(out[~ndimage.binary_dilation(label, iterations=40)])  # noqa: E731
    assert step(full) > 0.4
    assert (
        abs(step(kept) - step(full) * 1.0) < 0.1 < abs(step(plain) - step(full))
    )  # gain 1 for the label, 0.5 without keep


def _scaled_marker(image: np.ndarray, row: int = 150, col: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A white "R" marker of 120 x 88 pixels (the test marker drawn 4x larger), by default near the top right."""
    small = np.zeros((30, 22), np.float32)
    small, mark = draw_side_marker(small, 0, 0)
    mark = np.kron(mark, np.ones((4, 4), bool))
    labelled = image.copy()
    r, c = row, image.shape[1] - 350 if col is None else col
    region = labelled[r : r + mark.shape[0], c : c + mark.shape[1]]
    region[mark] = 1.0
    full_mask = np.zeros(image.shape, bool)
    full_mask[r : r + mark.shape[0], c : c + mark.shape[1]] = mark
    return labelled, full_mask
