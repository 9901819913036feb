"""MATLAB behaviours the published quality measures depend on, reproduced in numpy.

``rgb2gray`` (uint8 rounding), ``imresize`` (bicubic, antialiased when shrinking, symmetric
borders, dimension 1 first), ``fspecial('gaussian')`` and ``filter2(..., 'same'/'valid')``
(correlation with zero padding).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

RGB_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def rgb2gray(image: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray``: uint8 in, uint8 out (rounded); grey input is returned unchanged."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    grey = image[..., :3].astype(np.float64) @ np.asarray(RGB_WEIGHTS)
    if image.dtype == np.uint8:
        return np.clip(np.round(grey), 0, 255).astype(np.uint8)
    return grey


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def _contributions(in_length: int, out_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    kernel_width = 4.0
    if scale < 1:  # antialiasing: stretch the kernel
        kernel = lambda x: scale * _cubic(scale * x)  # noqa: E731
        kernel_width /= scale
    else:
        kernel = _cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(np.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(u[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(image, scale)`` with the default bicubic kernel, in float64."""
    image = np.asarray(image, dtype=np.float64)
    out = image
    for axis in (0, 1):
        length = out.shape[axis]
        weights, indices = _contributions(length, int(np.ceil(length * scale)), scale)
        moved = np.moveaxis(out, axis, 0)
        resized = np.einsum("op,op...->o...", weights, moved[indices])
        out = np.moveaxis(resized, 0, axis)
    return out


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """``fspecial('gaussian', size, sigma)``, normalised to sum 1."""
    half = (size - 1) / 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    window = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    window[window < np.finfo(float).eps * window.max()] = 0
    return window / window.sum()


def filter2(window: np.ndarray, image: np.ndarray, mode: str = "same") -> np.ndarray:
    """MATLAB ``filter2``: 2-D correlation with zero padding, 'same' or 'valid'."""
    return signal.correlate2d(np.asarray(image, dtype=np.float64), window, mode=mode)


def imfilter_replicate(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``imfilter(image, window, 'replicate')`` (correlation, same size)."""
    return ndimage.correlate(np.asarray(image, dtype=np.float64), window, mode="nearest")
