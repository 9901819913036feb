"""PIQE (Venkatanath et al., NCC 2015) as MATLAB's ``piqe`` computes it (METRICS.md).

Lower is better (0-100).
"""

from __future__ import annotations

import numpy as np

from .matlab import gaussian_window, imfilter_replicate

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
SEGMENT = 6
SEGMENT_STD_THRESHOLD = 0.1


def _has_artifact(block: np.ndarray) -> bool:
    edges = (block[0, :], block[-1, :], block[:, 0], block[:, -1])
    for edge in edges:
        segments = np.lib.stride_tricks.sliding_window_view(edge, SEGMENT)
        if np.any(segments.std(axis=1, ddof=1) < SEGMENT_STD_THRESHOLD):
            return True
    return False


def _is_noisy(block: np.ndarray, variance: float) -> bool:
    centre = block[:, 7:9]  # 1-based columns 8 and 9
    surround = np.delete(block, [7, 9], axis=1)  # MATLAB removes 1-based columns 8 and 10 (its quirk, kept)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre_surround = centre.std(ddof=1) / surround.std(ddof=1)
    if np.isnan(centre_surround):
        centre_surround = 0.0
    sigma = np.sqrt(variance)
    denominator = max(sigma, centre_surround)
    beta = abs(sigma - centre_surround) / denominator if denominator > 0 else 0.0
    return bool(sigma > 2 * beta)


def piqe(image: np.ndarray) -> float:
    """PIQE score of a 0-255 grey image."""
    x = np.round(np.asarray(image, dtype=np.float64))
    height, width = x.shape
    x = np.pad(x, ((0, (-height) % BLOCK), (0, (-width) % BLOCK)), mode="edge")
    window = gaussian_window(7, 7 / 6)
    mu = imfilter_replicate(x, window)
    sigma = np.sqrt(np.abs(imfilter_replicate(x * x, window) - mu * mu))
    mscn = (x - mu) / (sigma + 1)
    distortion, active = 0.0, 0
    for top in range(0, x.shape[0], BLOCK):
        for left in range(0, x.shape[1], BLOCK):
            block = mscn[top : top + BLOCK, left : left + BLOCK]
            variance = block.var(ddof=1)
            if variance <= ACTIVITY_THRESHOLD:
                continue
            active += 1
            if _has_artifact(block):
                distortion += 1 - variance
            if _is_noisy(block, variance):
                distortion += variance
    return float(100.0 * (distortion + 1) / (active + 1))
