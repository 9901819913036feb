"""Vertebral visibility as a reader sees it: contrast on the whole image at one display window.

The vertebral CNR of :mod:`xvertnet.metrics.task` is measured inside a small evaluation ROI and
is invariant to any linear window, so it cannot see what an enhancement does to the whole
image: a method that equalises the whole radiograph lets a reader see the vertebral bodies
behind the heart shadow at the same window as the lungs, while a method that adds local
contrast but leaves the dense mediastinum near the top of the range does not. These measures
take the **whole** image, map it to the display with one window (its ``percentiles``, 1st and
99th by default, as a default window/level would), and then, for every vertebral level of the
level map (1 = most superior):

* ``displayed_contrast``: mean displayed value of the level's body minus that of its
  surroundings (a band of ``band`` pixels around it, other levels excluded: paravertebral
  tissue and the disc spaces), as a fraction of the displayed range (0 ... 1; negative when
  the body is darker than its surroundings).
* ``displayed_cnr``: the same divided by the displayed noise at the scale of a vertebral body: the
  standard deviation, over the level's neighbourhood, of the output's noise image (from its noise
  twin, :func:`xvertnet.metrics.task.noise_image`) band-passed at a body's size
  (:func:`xvertnet.metrics.task.band_pass`), measured before clipping and scaled by the window,
  so that a contrast bought with amplified noise at that scale does not count; the noise of an
  8-bit display's quantisation (one grey level / sqrt(12)) is added in quadrature. Both scale
  alike with the window, so this CNR changes with the display only where it clips (clipping
  removes contrast, not noise: saturation counts as lost signal). Without a noise twin it is NaN.
* ``displayed_saturation``: the share of the level's body and surroundings clipped at either
  end of the window (where CLAHE-like local stretching or a bright mediastinum leaves nothing
  to see).

An evaluation ROI's value is the mean over the levels whose centre row lies inside its rows
(upper ROI: upper thoracic levels; lower ROI: the levels behind the heart).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from xvertnet.errors import InvalidValueError
from xvertnet.metrics.task import band_pass, body_scale, noise_image

DEFAULT_PERCENTILES = (1.0, 99.0)
DEFAULT_DISPLAY_BAND = 12
#: Quantisation noise of an 8-bit display, in displayed units: the floor of the displayed noise.
DISPLAY_QUANTISATION_NOISE = 1.0 / 255.0 / np.sqrt(12.0)
#: Fewest body pixels a level needs to be measured.
MIN_LEVEL_PIXELS = 20


def window(image: np.ndarray, percentiles=DEFAULT_PERCENTILES) -> tuple[float, float]:
    """The display window (low, high) of an image: its ``percentiles``."""
    low, high = np.percentile(np.asarray(image, dtype=np.float64), percentiles)
    return float(low), float(high)


def display(
    image: np.ndarray, percentiles=DEFAULT_PERCENTILES, *, limits: tuple[float, float] | None = None
) -> np.ndarray:
    """The image mapped to [0, 1] by one window, from its own ``percentiles`` or the given ``limits``
    (values outside are clipped)."""
    image = np.asarray(image, dtype=np.float64)
    low, high = limits if limits is not None else window(image, percentiles)
    if high <= low:
        return np.zeros_like(image)
    return np.clip((image - low) / (high - low), 0.0, 1.0)


def level_visibility(
    image: np.ndarray,
    levels: np.ndarray,
    *,
    twin: np.ndarray | None = None,
    band: int = DEFAULT_DISPLAY_BAND,
    percentiles=DEFAULT_PERCENTILES,
) -> dict[int, dict[str, float]]:
    """Per level of ``levels`` (int map, 0 = none): displayed contrast, CNR (with the output on the noise ``twin``) and
    saturation, and its centre row."""
    levels = np.asarray(levels)
    if levels.shape != np.shape(image):
        raise InvalidValueError(f"level map {levels.shape} and image {np.shape(image)} differ in shape")
    image = np.asarray(image, dtype=np.float64)
    low, high = window(image, percentiles)
    shown = display(image, limits=(low, high))
    any_level = levels > 0
    body_px = body_scale(image.shape[0])
    noise_band = None if twin is None else band_pass(noise_image(image, twin), body_px)
    found = {}
    for level, region in enumerate(ndimage.find_objects(levels.astype(np.int32)), start=1):
        if region is None:
            continue
        top, bottom = max(0, region[0].start - band), region[0].stop + band
        left, right = max(0, region[1].start - band), region[1].stop + band
        window_ = (slice(top, bottom), slice(left, right))
        body = levels[window_] == level
        if body.sum() < MIN_LEVEL_PIXELS:
            continue
        surround = ndimage.binary_dilation(body, iterations=band) & ~any_level[window_]
        if surround.sum() < MIN_LEVEL_PIXELS:
            continue
        patch = shown[window_]
        contrast = float(patch[body].mean() - patch[surround].mean())
        if noise_band is None or not high > low:
            noise = float("nan")
        else:
            noise = float(
                np.hypot(noise_band[window_][body | surround].std() / (high - low), DISPLAY_QUANTISATION_NOISE)
            )
        near = body | surround
        saturated = float(((patch[near] <= 0.0) | (patch[near] >= 1.0)).mean())
        found[level] = {
            "row": float(np.nonzero(body)[0].mean() + top),
            "displayed_contrast": contrast,
            "displayed_cnr": contrast / noise,
            "displayed_saturation": saturated,
        }
    return found


def roi_visibility(per_level: dict[int, dict[str, float]], box) -> dict[str, float]:
    """Mean of the per-level values over the levels centred inside the rows of ``box`` (top, left, height, width)."""
    top, _, height, _ = box
    inside = [values for values in per_level.values() if top <= values["row"] < top + height]
    names = ("displayed_contrast", "displayed_cnr", "displayed_saturation")
    if not inside:
        return {name: float("nan") for name in names} | {"displayed_levels": 0}
    return {name: float(np.mean([values[name] for values in inside])) for name in names} | {
        "displayed_levels": len(inside)
    }
