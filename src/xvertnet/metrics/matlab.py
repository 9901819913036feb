"""MATLAB behaviours the published quality measures depend on, reproduced in numpy.

``rgb2gray`` (uint8 rounding), ``imresize`` (bicubic, antialiased when shrinking, symmetric
borders, dimension 1 first), ``fspecial('gaussian')``, ``filter2(..., 'same'/'valid')``
(correlation with zero padding) and ``imfilter(..., 'replicate')``.

The two correlations are compiled (numba, ``cache=True``: compiled once per machine, then
loaded from ``__pycache__``) and sum every output pixel's terms in exactly the order of the
scipy routines they replace (``signal.correlate2d`` and ``ndimage.correlate``), so their values
are those routines' bit for bit, 4-11 times faster: the order decides the rounding residue of
flat regions, to which BRISQUE and NIQE are sensitive (natural_scene.py).
"""

from __future__ import annotations

import numba
import numpy as np

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
    """MATLAB ``filter2``: 2-D correlation with zero padding, 'same' or 'valid'.

    Equal bit for bit to ``scipy.signal.correlate2d(image, window, mode)`` (the same sums in the
    same order, see :func:`_correlate_valid_in_fours`).
    """
    image = np.asarray(image, dtype=np.float64)
    window = np.ascontiguousarray(window, dtype=np.float64)
    rows, cols = window.shape
    if mode == "same":
        top, left = (rows - 1) // 2, (cols - 1) // 2  # correlate2d's centre of an even window
        image = np.pad(image, ((top, rows - 1 - top), (left, cols - 1 - left)))
    elif mode != "valid" or image.shape[0] < rows or image.shape[1] < cols:
        from scipy import signal

        return signal.correlate2d(image, window, mode=mode)  # 'full', or correlate2d's swapped inputs
    out = np.empty((image.shape[0] - rows + 1, image.shape[1] - cols + 1))
    _correlate_valid_in_fours(np.ascontiguousarray(image), window, out)
    return out


def imfilter_replicate(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``imfilter(image, window, 'replicate')`` (correlation, same size).

    Equal bit for bit to ``scipy.ndimage.correlate(image, window, mode="nearest")`` (the same
    sums in the same order, see :func:`_correlate_valid_one_by_one`).
    """
    image = np.asarray(image, dtype=np.float64)
    window = np.ascontiguousarray(window, dtype=np.float64)
    rows, cols = window.shape
    top, left = rows // 2, cols // 2  # ndimage's centre (origin 0)
    padded = np.pad(image, ((top, rows - 1 - top), (left, cols - 1 - left)), mode="edge")
    out = np.empty(image.shape)
    if out.size:
        _correlate_valid_one_by_one(np.ascontiguousarray(padded), window, np.finfo(np.float64).eps, out)
    return out


# The kernels below add one group of window taps at a time to every output pixel of a row (the
# inner loop over columns is SIMD): each pixel still receives its terms in the order the scipy
# routine adds them. No fastmath, so no fused multiply-adds or reassociation. Single-threaded:
# with numba's parallel loops the calls took 5x longer whenever another process held a core.


@numba.njit(cache=True)
def _correlate_valid_in_fours(image, window, out):  # pragma: no cover - compiled
    """'valid' correlation summed as scipy's ``pylab_convolve_2d`` sums it: sum = 0, then per
    window row ``sum += w0 x0 + w1 x1 + w2 x2 + w3 x3`` for each full group of four taps and
    ``sum += w x`` for each remaining tap."""
    rows, cols = out.shape
    window_rows, window_cols = window.shape
    for r in range(rows):
        total = out[r]
        total[:] = 0.0
        for j in range(window_rows):
            line = image[r + j]
            k = 0
            while k <= window_cols - 4:
                w0, w1, w2, w3 = window[j, k], window[j, k + 1], window[j, k + 2], window[j, k + 3]
                for c in range(cols):
                    total[c] += w0 * line[c + k] + w1 * line[c + k + 1] + w2 * line[c + k + 2] + w3 * line[c + k + 3]
                k += 4
            while k < window_cols:
                w = window[j, k]
                for c in range(cols):
                    total[c] += w * line[c + k]
                k += 1


@numba.njit(cache=True)
def _correlate_valid_one_by_one(image, window, negligible, out):  # pragma: no cover - compiled
    """'valid' correlation summed as scipy's ``NI_Correlate`` sums it: sum = 0, then ``sum += w x``
    tap by tap in row-major order, skipping the taps with ``|w| <= negligible`` (DBL_EPSILON)."""
    rows, cols = out.shape
    window_rows, window_cols = window.shape
    for r in range(rows):
        total = out[r]
        total[:] = 0.0
        for j in range(window_rows):
            line = image[r + j]
            for k in range(window_cols):
                w = window[j, k]
                if abs(w) > negligible:
                    for c in range(cols):
                        total[c] += w * line[c + k]
