"""TMQI, the tone-mapped image quality index (Yeganeh and Wang, IEEE TIP 2013) (docs/measures.md).

The reference is the original ROI (taken as the "HDR" image, scaled to 0 .. 2^32 - 1), the
test image is the method's output on 0-255. Q = 0.8012 S^0.3046 + 0.1988 N^0.7088 with the
structural fidelity S (5 scales) and the statistical naturalness N. Higher is better (0-1).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, special, stats

from xvertnet.metrics.matlab import filter2

A, ALPHA, BETA = 0.8012, 0.3046, 0.7088
LEVEL_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
C1, C2 = 0.01, 10.0
WINDOW = 11


def _gaussian_11() -> np.ndarray:
    half = WINDOW // 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    window = np.exp(-(x**2 + y**2) / (2 * 1.5**2))
    return window / window.sum()


def _valid_filter(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    return filter2(window, image, "valid")  # = scipy.signal.correlate2d(image, window, "valid"), bit for bit


def _all_along_rows(flags: np.ndarray, length: int) -> np.ndarray:
    """True where ``length`` consecutive ``flags`` along each row (valid positions) are all True: runs of
    1, 2, 4, ... combined by shifted ANDs."""
    covered = 1
    while covered < length:
        step = min(covered, length - covered)
        flags = flags[:, :-step] & flags[:, step:]
        covered += step
    return flags


def _constant_windows(image: np.ndarray) -> np.ndarray:
    """True where the 11 x 11 window (valid positions) holds a single value, i.e. where its maximum equals its
    minimum: where each of its rows is constant and so is its first column (exact comparisons)."""
    if np.isnan(image).any():  # NaN is unequal to itself here but skipped by the max and min filters: keep them
        return ndimage.maximum_filter(image, WINDOW)[5:-5, 5:-5] == ndimage.minimum_filter(image, WINDOW)[5:-5, 5:-5]
    rows_constant = _all_along_rows(image[:, 1:] == image[:, :-1], WINDOW - 1)
    flat = _all_along_rows(rows_constant.T, WINDOW).T
    if flat.any():
        first_column = image[:, : flat.shape[1]]
        flat &= _all_along_rows((first_column[1:] == first_column[:-1]).T, WINDOW - 1).T
    return flat


def _local_moments(a: np.ndarray, b: np.ndarray):
    """Local std of a and b and their covariance (11 x 11 Gaussian, valid); zero where a window is constant."""
    window = _gaussian_11()
    mu_a, mu_b = _valid_filter(a, window), _valid_filter(b, window)
    var_a = np.maximum(_valid_filter(a * a, window) - mu_a**2, 0.0)
    var_b = np.maximum(_valid_filter(b * b, window) - mu_b**2, 0.0)
    cov = _valid_filter(a * b, window) - mu_a * mu_b
    flat_a = _constant_windows(a)
    flat_b = _constant_windows(b)
    var_a[flat_a] = 0.0
    var_b[flat_b] = 0.0
    cov[flat_a | flat_b] = 0.0
    return np.sqrt(var_a), np.sqrt(var_b), cov


def _contrast_sensitivity(frequency: float) -> float:
    return 100 * 2.6 * (0.0192 + 0.114 * frequency) * np.exp(-((0.114 * frequency) ** 1.1))


def _local_fidelity(hdr: np.ndarray, ldr: np.ndarray, frequency: float, hdr_scale: float) -> float:
    sigma1, sigma2, sigma12 = _local_moments(hdr, ldr)
    sigma1, sigma12 = sigma1 * hdr_scale, sigma12 * hdr_scale  # moments on (I - min), then scaled (docs/measures.md)
    threshold = 128 / (1.4 * _contrast_sensitivity(frequency))
    # stats.norm.cdf(sigma, threshold, threshold / 3), evaluated as scipy does it (same values, less overhead)
    sigma1p = special.ndtr((sigma1 - threshold) / (threshold / 3))
    sigma2p = special.ndtr((sigma2 - threshold) / (threshold / 3))
    fidelity = ((2 * sigma1p * sigma2p + C1) / (sigma1p**2 + sigma2p**2 + C1)) * (
        (sigma12 + C2) / (sigma1 * sigma2 + C2)
    )
    return float(fidelity.mean())


def _downsample(image: np.ndarray) -> np.ndarray:
    padded = np.pad(image, ((0, image.shape[0] % 2), (0, image.shape[1] % 2)), mode="edge")
    mean = (padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]) / 4
    return mean


def structural_fidelity(reference: np.ndarray, test: np.ndarray) -> tuple[float, list[float]]:
    """S and its per-level values; ``reference`` any range (scaled to 2^32 - 1), ``test`` 0-255."""
    reference = np.asarray(reference, dtype=np.float64)
    low, high = reference.min(), reference.max()
    hdr_scale = float(np.round((2.0**32 - 1) / (high - low))) if high > low else 1.0
    hdr = reference - low
    ldr = np.asarray(test, dtype=np.float64)
    levels, frequency = [], 32.0
    for _ in LEVEL_WEIGHTS:
        frequency /= 2
        if min(hdr.shape) < 11:
            break
        levels.append(_local_fidelity(hdr, ldr, frequency, hdr_scale))
        hdr, ldr = _downsample(hdr), _downsample(ldr)
    score = float(np.prod([max(s, 0.0) ** w for s, w in zip(levels, LEVEL_WEIGHTS)]))
    return score, levels


def statistical_naturalness(test: np.ndarray) -> float:
    """N of a 0-255 image: brightness and contrast likelihoods of natural images, peak-normalised."""
    test = np.asarray(test, dtype=np.float64)
    rows, cols = test.shape
    padded = np.pad(test, ((0, (-rows) % 11), (0, (-cols) % 11)))
    block_rows, block_cols = padded.shape[0] // 11, padded.shape[1] // 11
    blocks = padded.reshape(block_rows, 11, block_cols, 11).swapaxes(1, 2).reshape(block_rows, block_cols, 121)
    block_std = blocks.std(axis=2, ddof=1)  # of the zero-padded block, as MATLAB's blkproc hands it to std
    # MATLAB blkproc semantics: blkproc(L, [11 11], @(x) std(x(:))*ones(size(x))) zero-pads the partial
    # blocks at the bottom and right, fills each block with its std and trims the output back to the
    # image size; mean2 of that is the mean over pixels, so each block counts by its area inside the image.
    inside = np.outer(
        np.minimum(11, rows - 11 * np.arange(block_rows)), np.minimum(11, cols - 11 * np.arange(block_cols))
    )
    sigma = float(np.sum(block_std * inside) / (rows * cols))
    a, b = 4.4, 10.1
    mode = (a - 1) / (a + b - 2)
    contrast = stats.beta.pdf(sigma / 64.29, a, b) / stats.beta.pdf(mode, a, b)
    brightness = stats.norm.pdf(test.mean(), 115.94, 27.99) / stats.norm.pdf(115.94, 115.94, 27.99)
    return float(brightness * contrast)


def tmqi(reference: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """{'tmqi': Q, 'tmqi_s': S, 'tmqi_n': N}."""
    s, _ = structural_fidelity(reference, test)
    n = statistical_naturalness(test)
    return {"tmqi": float(A * s**ALPHA + (1 - A) * n**BETA), "tmqi_s": s, "tmqi_n": n}
