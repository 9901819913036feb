"""Task-based measures that need a ground-truth vertebra mask (the demo DRRs have one).

* ``vertebral_cnr``: contrast-to-noise ratio of the vertebra pixels against the
  paravertebral background, the band of ``band`` pixels around the mask:
  |mean_v - mean_b| / sqrt((var_v + var_b) / 2). Invariant to a global linear stretch.
* ``vertebral_edge_strength``: mean Sobel gradient magnitude on the mask's boundary
  (one pixel inside and outside), on the [0, 1] intensity scale.

Both are reported as ratios to the original ROI's value (computed in aggregation), so 1 means
"as visible as before".
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DEFAULT_BAND = 12


def vertebral_cnr(image: np.ndarray, mask: np.ndarray, *, band: int = DEFAULT_BAND) -> float:
    mask = np.asarray(mask).astype(bool)
    if mask.sum() < 10 or (~mask).sum() < 10:
        return float("nan")
    background = ndimage.binary_dilation(mask, iterations=band) & ~mask
    if background.sum() < 10:
        return float("nan")
    inside, outside = image[mask], image[background]
    spread = np.sqrt((inside.var() + outside.var()) / 2)
    return float(abs(inside.mean() - outside.mean()) / spread) if spread > 0 else float("nan")


def vertebral_edge_strength(image: np.ndarray, mask: np.ndarray) -> float:
    mask = np.asarray(mask).astype(bool)
    boundary = ndimage.binary_dilation(mask) & ~ndimage.binary_erosion(mask)
    if boundary.sum() < 10:
        return float("nan")
    image = np.asarray(image, dtype=np.float64)
    magnitude = np.hypot(ndimage.sobel(image, axis=0, mode="nearest"), ndimage.sobel(image, axis=1, mode="nearest"))
    return float(magnitude[boundary].mean())
