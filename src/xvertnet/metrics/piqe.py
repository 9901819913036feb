"""PIQE (Venkatanath et al., NCC 2015) as MATLAB's ``piqe`` computes it (docs/measures.md).

Lower is better (0-100).
"""

from __future__ import annotations

import numpy as np

from xvertnet.metrics.matlab import gaussian_window, imfilter_replicate

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
SEGMENT = 6
SEGMENT_STD_THRESHOLD = 0.1


def _has_artifact(blocks: np.ndarray) -> np.ndarray:
    """Per block (n x 16 x 16): does an edge (first or last row or column) have a 6-pixel segment of std < 0.1?"""
    edges = np.stack([blocks[:, 0, :], blocks[:, -1, :], blocks[:, :, 0], blocks[:, :, -1]], axis=1)  # n x 4 x 16
    segments = np.lib.stride_tricks.sliding_window_view(edges, SEGMENT, axis=2)  # n x 4 x 11 x 6
    return np.any(segments.std(axis=3, ddof=1) < SEGMENT_STD_THRESHOLD, axis=(1, 2))


def _is_noisy(blocks: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Per block (n x 16 x 16, its variance): the noise criterion."""
    count = blocks.shape[0]
    centre = blocks[:, :, 7:9].reshape(count, 2 * BLOCK)  # 1-based columns 8 and 9
    # MATLAB removes 1-based columns 8 and 10 (its quirk, kept)
    surround = np.delete(blocks, [7, 9], axis=2).reshape(count, 14 * BLOCK)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre_surround = centre.std(axis=1, ddof=1) / surround.std(axis=1, ddof=1)
        centre_surround[np.isnan(centre_surround)] = 0.0
        sigma = np.sqrt(variance)
        denominator = np.maximum(sigma, centre_surround)
        beta = np.where(denominator > 0, np.abs(sigma - centre_surround) / denominator, 0.0)
    return sigma > 2 * beta


def _mscn(image: np.ndarray) -> np.ndarray:
    """MSCN coefficients of the rounded image, padded at the bottom and right to whole blocks."""
    x = np.round(np.asarray(image, dtype=np.float64))
    height, width = x.shape
    x = np.pad(x, ((0, (-height) % BLOCK), (0, (-width) % BLOCK)), mode="edge")
    window = gaussian_window(7, 7 / 6)
    mu = imfilter_replicate(x, window)
    sigma = np.sqrt(np.abs(imfilter_replicate(x * x, window) - mu * mu))
    return (x - mu) / (sigma + 1)


def piqe(image: np.ndarray) -> float:
    """PIQE score of a 0-255 grey image."""
    mscn = _mscn(image)
    # The 16 x 16 blocks in raster order (left to right, then top to bottom), each one contiguous, so
    # each block's statistics are summed exactly as numpy sums them for that block alone.
    rows, cols = mscn.shape[0] // BLOCK, mscn.shape[1] // BLOCK
    blocks = mscn.reshape(rows, BLOCK, cols, BLOCK).swapaxes(1, 2).reshape(rows * cols, BLOCK, BLOCK)
    del mscn
    variance = blocks.reshape(rows * cols, BLOCK * BLOCK).var(axis=1, ddof=1)
    active = ~(variance <= ACTIVITY_THRESHOLD)
    blocks, variance = blocks[active], variance[active]
    artifact, noisy = _has_artifact(blocks), _is_noisy(blocks, variance)
    distortion = 0.0
    for block_variance, has_artifact, is_noisy in zip(variance, artifact, noisy):  # added block by block, in order
        if has_artifact:
            distortion += 1 - block_variance
        if is_noisy:
            distortion += block_variance
    return float(100.0 * (distortion + 1) / (int(active.sum()) + 1))
