"""Task-based measures that need a ground-truth vertebra mask and a noise twin (the demo DRRs have both).

A *noise twin* is the same radiograph with an independent realisation of the quantum noise,
enhanced by the same method; half the difference of the two outputs, times sqrt 2, is a
noise-only image n = (y - y_twin) / sqrt(2) with the output's own noise, whatever the method did
to it (amplified, smoothed, coloured). Both measures divide by that noise **at the scale of the
structure**, so a contrast bought with noise at that scale does not count, and both are
invariant to any global linear map a*y + b with a > 0 (the noise scales with the contrast).

* ``vertebral_cnr`` (signed): (mean_v - mean_b) / sigma_band, the mean of the vertebra pixels
  minus that of the paravertebral background (the band of ``band`` pixels around the mask), over
  the standard deviation of the noise image band-passed at the size of a vertebral body, a
  difference of Gaussians of sigmas ``body_px`` / 8 and ``body_px`` / 2 (``body_px``: a vertebral
  body's height in pixels; by default a sixteenth of the canonical height, about 23 mm on a
  chest radiograph). A method that inverts the vertebra against its surroundings scores below 0.
* ``vertebral_edge_strength``: the mean of the gradient along the outward normal of the mask's
  boundary (one pixel inside and outside), signed so that a bright body on a darker surround is
  positive, over the root-mean-square gradient of the noise image; gradients of a Gaussian of
  sigma 1 pixel (the scale of an endplate). An image whose edges are plain gain over its noise
  scores as the original.

Both are reported as ratios to the original ROI's value (computed in aggregation), so 1 means
"as visible as before"; a ratio is defined only where the original's value is positive.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

DEFAULT_BAND = 12
#: Fewest pixels of vertebra, background or boundary a measure needs.
MIN_PIXELS = 10


@dataclasses.dataclass(frozen=True)
class VertebraTask:
    """What the task measures need besides the image: the vertebra ``mask``, the method's output on the noise
    twin (``twin255``, 0-255 like the image) and a vertebral body's height ``body_px`` (None: a sixteenth of
    four times the ROI's height)."""

    mask: np.ndarray
    twin255: np.ndarray
    body_px: float | None = None


def body_scale(canonical_height: int) -> float:
    """The height of a vertebral body in pixels of a chest radiograph ``canonical_height`` tall (a sixteenth)."""
    return canonical_height / 16.0


def noise_image(image: np.ndarray, twin: np.ndarray) -> np.ndarray:
    """The output's noise alone: (y - y_twin) / sqrt(2) (module docstring)."""
    return (np.asarray(image, dtype=np.float64) - np.asarray(twin, dtype=np.float64)) / np.sqrt(2.0)


def band_pass(image: np.ndarray, body_px: float) -> np.ndarray:
    """Difference of Gaussians of sigmas ``body_px`` / 8 and ``body_px`` / 2: the band of a vertebral body."""
    image = np.asarray(image, dtype=np.float64)
    return ndimage.gaussian_filter(image, body_px / 8.0, mode="reflect") - ndimage.gaussian_filter(
        image, body_px / 2.0, mode="reflect"
    )


def band_noise(image: np.ndarray, twin: np.ndarray, body_px: float, region: np.ndarray | None = None) -> float:
    """Standard deviation of the noise image band-passed at the scale of a vertebral body (over ``region``)."""
    filtered = band_pass(noise_image(image, twin), body_px)
    values = filtered[region] if region is not None else filtered
    return float(values.std()) if values.size else float("nan")


def vertebral_cnr(
    image: np.ndarray, twin: np.ndarray, mask: np.ndarray, *, band: int = DEFAULT_BAND, body_px: float | None = None
) -> float:
    """Signed vertebral CNR over the noise at a vertebral body's scale (module docstring)."""
    mask = np.asarray(mask).astype(bool)
    if mask.sum() < MIN_PIXELS or (~mask).sum() < MIN_PIXELS:
        return float("nan")
    background = ndimage.binary_dilation(mask, iterations=band) & ~mask
    if background.sum() < MIN_PIXELS:
        return float("nan")
    image = np.asarray(image, dtype=np.float64)
    body_px = body_px or body_scale(image.shape[0] * 4)  # an evaluation ROI is a quarter of the canonical height
    noise = band_noise(image, twin, body_px)
    if not noise > 0:
        return float("nan")
    return float((image[mask].mean() - image[background].mean()) / noise)


def vertebral_edge_strength(image: np.ndarray, twin: np.ndarray, mask: np.ndarray, *, sigma: float = 1.0) -> float:
    """Signed mean boundary gradient over the RMS gradient of the noise (module docstring)."""
    mask = np.asarray(mask).astype(bool)
    boundary = ndimage.binary_dilation(mask) & ~ndimage.binary_erosion(mask)
    if boundary.sum() < MIN_PIXELS or mask.all():
        return float("nan")
    image = np.asarray(image, dtype=np.float64)
    inward = ndimage.gaussian_filter(mask.astype(np.float64), 1.0)  # its gradient points into the body
    normal = np.stack(np.gradient(inward))
    length = np.hypot(*normal)
    gradient = np.stack([ndimage.gaussian_filter(image, sigma, order=order) for order in ((1, 0), (0, 1))])
    along = (gradient * normal).sum(axis=0)[boundary] / np.maximum(length[boundary], 1e-12)
    noise = noise_image(image, twin)
    noise_gradient = np.hypot(*[ndimage.gaussian_filter(noise, sigma, order=order) for order in ((1, 0), (0, 1))])
    rms = float(np.sqrt((noise_gradient**2).mean()))
    return float(along.mean() / rms) if rms > 0 else float("nan")
