"""The display-referred vertebral measures rank a synthetic case the way a reader would."""

import numpy as np
import pytest

from xvertnet.errors import InvalidValueError
from xvertnet.metrics.displayed import display, level_visibility, roi_visibility
from xvertnet.metrics.task import vertebral_cnr

LOWER_BOX = (300, 0, 200, 256)  # rows 300-499: the levels behind the "heart"


def chest(noise=0.004, seed=0, background_weight=1.0):
    """A 512 x 256 'radiograph': dark lungs, a dense mediastinum over the lower half (the heart shadow),
    and a column of 12 vertebral bodies, each 0.03 brighter than its surroundings, separated by discs;
    ``background_weight`` scales the large-scale density (lungs, mediastinum) alone."""
    rows, cols = np.mgrid[:512, :256].astype(float)
    image = 0.25 + 0.1 * np.exp(-(((cols - 128) / 60) ** 8))  # lungs, a little mediastinum throughout
    image += 0.55 / (1 + np.exp(-(rows - 280) / 15)) * np.exp(-(((cols - 128) / 90) ** 8))  # heart shadow below row 280
    image *= background_weight
    levels = np.zeros((512, 256), dtype=np.uint8)
    for level in range(12):
        top = 20 + level * 40
        levels[top : top + 30, 113:143] = level + 1
    image += 0.03 * (levels > 0)
    return image + np.random.default_rng(seed).normal(0, noise, image.shape), levels


def chest_pair(noise=0.004, background_weight=1.0):
    """``chest`` and its noise twin (the same image, another noise realisation), and the level map."""
    image, levels = chest(noise, 0, background_weight)
    twin, _ = chest(noise, 1, background_weight)
    return image, twin, levels


def test_range_compression_that_keeps_local_contrast_scores_higher_behind_the_heart():
    original, original_twin, levels = chest_pair()
    # A global range compression: the large-scale density at a fifth, local detail and noise exactly kept.
    compressed, compressed_twin, _ = chest_pair(background_weight=0.2)
    before = roi_visibility(level_visibility(original, levels, twin=original_twin), LOWER_BOX)
    after = roi_visibility(level_visibility(compressed, levels, twin=compressed_twin), LOWER_BOX)
    assert after["displayed_contrast"] > 2 * before["displayed_contrast"] > 0
    # Noise at the body's scale below the display's grey levels: the displayed CNR follows the displayed contrast.
    assert after["displayed_cnr"] > 2 * before["displayed_cnr"]
    # With noise above them, the displayed CNR is window-invariant but for clipping: equal, as it should be.
    loud = [chest_pair(noise=0.05, background_weight=weight) for weight in (1.0, 0.2)]
    loud_before, loud_after = (
        roi_visibility(level_visibility(image, levels, twin=twin), LOWER_BOX) for image, twin, _ in loud
    )
    assert loud_after["displayed_cnr"] == pytest.approx(loud_before["displayed_cnr"], rel=0.15)
    # ... while the ROI's CNR, invariant to any window, cannot tell the two apart.
    roi = (slice(340, 470), slice(92, 165))
    cnr_before = vertebral_cnr(original[roi], original_twin[roi], levels[roi] > 0, band=12)
    cnr_after = vertebral_cnr(compressed[roi], compressed_twin[roi], levels[roi] > 0, band=12)
    assert cnr_after == pytest.approx(cnr_before, rel=0.25)


def test_saturating_the_mediastinum_hides_the_vertebrae_behind_it():
    original, levels = chest()
    saturated = np.minimum(original, np.percentile(original, 80))  # a window that clips the heart shadow
    before = roi_visibility(level_visibility(original, levels), LOWER_BOX)
    after = roi_visibility(level_visibility(saturated, levels), LOWER_BOX)
    assert after["displayed_saturation"] > 0.5 > before["displayed_saturation"]
    assert after["displayed_contrast"] < 0.5 * before["displayed_contrast"]


def test_amplified_noise_lowers_the_displayed_cnr_but_not_the_contrast():
    original, original_twin, levels = chest_pair(noise=0.002)
    noisy, noisy_twin, _ = chest_pair(noise=0.05)
    quiet = roi_visibility(level_visibility(original, levels, twin=original_twin), LOWER_BOX)
    loud = roi_visibility(level_visibility(noisy, levels, twin=noisy_twin), LOWER_BOX)
    assert loud["displayed_contrast"] == pytest.approx(quiet["displayed_contrast"], rel=0.3)
    assert loud["displayed_cnr"] < 0.5 * quiet["displayed_cnr"]


def test_levels_are_assigned_to_the_roi_that_holds_their_centre():
    image, levels = chest()
    per_level = level_visibility(image, levels)
    assert sorted(per_level) == list(range(1, 13))
    upper = roi_visibility(per_level, (0, 0, 200, 256))
    lower = roi_visibility(per_level, LOWER_BOX)
    assert upper["displayed_levels"] == 5 and lower["displayed_levels"] == 5
    assert roi_visibility(per_level, (0, 0, 10, 256))["displayed_levels"] == 0


def test_display_window_and_shape_check():
    shown = display(np.arange(1000.0).reshape(10, 100))
    assert shown.min() == 0 and shown.max() == 1 and 0.4 < shown.mean() < 0.6
    with pytest.raises(InvalidValueError, match="differ in shape"):
        level_visibility(np.zeros((10, 10)), np.zeros((10, 11), dtype=np.uint8))


def test_a_noise_free_image_scores_its_contrast_in_display_grey_levels():
    from xvertnet.metrics.displayed import DISPLAY_QUANTISATION_NOISE

    image, levels = chest(noise=0.0)
    for values in level_visibility(image, levels, twin=image).values():
        assert np.isfinite(values["displayed_cnr"])
        assert values["displayed_cnr"] == pytest.approx(
            values["displayed_contrast"] / DISPLAY_QUANTISATION_NOISE, rel=0.2
        )


def test_without_a_noise_twin_the_displayed_cnr_is_not_guessed():
    image, levels = chest()
    for values in level_visibility(image, levels).values():
        assert np.isnan(values["displayed_cnr"]) and np.isfinite(values["displayed_contrast"])


def test_noise_amplified_at_the_scale_of_a_vertebral_body_costs_displayed_cnr_but_fine_grain_does_not():
    from scipy import ndimage

    from xvertnet.metrics.task import band_pass, body_scale

    original, original_twin, levels = chest_pair(noise=0.002)
    body = body_scale(original.shape[0])
    rng = np.random.default_rng(5)
    coarse = [band_pass(rng.normal(0, 1, original.shape), body) for _ in range(2)]  # noise in the body's band
    fine = [
        (lambda white: white - ndimage.gaussian_filter(white, 1))(rng.normal(0, 1, original.shape)) for _ in range(2)
    ]
    coarse, fine = ([0.01 * field / field.std() for field in fields] for fields in (coarse, fine))  # same std per pixel
    base = roi_visibility(level_visibility(original, levels, twin=original_twin), LOWER_BOX)["displayed_cnr"]
    coarse_cnr = roi_visibility(
        level_visibility(original + coarse[0], levels, twin=original_twin + coarse[1]), LOWER_BOX
    )
    fine_cnr = roi_visibility(level_visibility(original + fine[0], levels, twin=original_twin + fine[1]), LOWER_BOX)
    assert coarse_cnr["displayed_cnr"] < 0.5 * base
    assert fine_cnr["displayed_cnr"] > 3 * coarse_cnr["displayed_cnr"]
