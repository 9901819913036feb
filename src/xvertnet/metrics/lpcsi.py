"""LPC-SI, local phase coherence sharpness index (Hassen, Wang, Salama, IEEE TIP 2013) (docs/measures.md).

Higher is sharper (0-1). ``sigma_onf`` (bandwidth of the log-Gabor filters) changes the values
a lot. The default is 0.75, the value hard-coded in the only copy of the authors' code that
carries their release header ("LPC-SI ... Version 1.0, Copyright(c) 2013 Rania Hassen");
copies without the header use 0.33, which stays selectable (config ``metrics.lpc_sigma_onf``).
It is recorded with every result.
"""

from __future__ import annotations

import functools

import numpy as np

DEFAULT_SIGMA_ONF = 0.75  # the authors' released lpc_si.m (v1.0)
SCALES = (1.0, 1.5, 2.0)
SCALE_WEIGHTS = (1.0, -3.0, 2.0)
ORIENTATIONS = 8
C = 2.0
BETA_K = 1e-4
#: Images of at most this many pixels (every ROI) keep their log-Gabor filters between calls, cached
#: by shape: the 8 angular spreads (64 bytes per pixel, last two shapes) and the 3 radial filters
#: (24 bytes per pixel, last two shapes or sigma_onf values): at most 46 MB, at 512 x 512. Larger
#: images compute them per call, in the lean buffers of ``lpc_map``.
CACHED_FILTER_PIXELS = 512 * 512


def _frequency_grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Kovesi's grid: radius and angle, ifftshifted, radius 1 at DC."""

    def axis(n):
        return (np.arange(n) - (n - 1) / 2) / (n - 1) if n % 2 else (np.arange(n) - n / 2) / n

    x, y = np.meshgrid(axis(cols), axis(rows))
    radius = np.fft.ifftshift(np.sqrt(x**2 + y**2))
    theta = np.fft.ifftshift(np.arctan2(-y, x))
    radius[0, 0] = 1.0
    return radius, theta


def _fft2_inplace(values: np.ndarray, inverse: bool = False) -> np.ndarray:
    """``np.fft.fft2``/``ifft2`` of a complex128 array, computed in place (the same calls, so the same bits)."""
    transform = np.fft.ifft if inverse else np.fft.fft
    transform(values, axis=1, out=values)
    transform(values, axis=0, out=values)
    return values


def _radial_filters(rows: int, cols: int, sigma_onf: float) -> list[np.ndarray]:
    """The log-Gabor radial filter of each scale, low-passed, zero at DC."""
    radius = _frequency_grid(rows, cols)[0]
    lowpass = 1.0 / (1.0 + (radius / 0.45) ** 30)
    radial = []
    for scale in SCALES:
        f0 = 1.0 / (4.0 * scale)
        log_gabor = np.exp(-(np.log(radius / f0) ** 2) / (2 * np.log(sigma_onf) ** 2)) * lowpass
        log_gabor[0, 0] = 0.0
        radial.append(log_gabor)
    return radial


def _angular_spread(
    theta: np.ndarray, orientation: int, out: np.ndarray, scratch: np.ndarray, product: np.ndarray
) -> np.ndarray:
    """The angular Gaussian of one orientation, into ``out`` (``scratch``, ``product``: work buffers)."""
    angle = orientation * np.pi / ORIENTATIONS
    sigma_theta = np.pi / ORIENTATIONS / 1.5
    # spread = exp(-(|arctan2(ds, dc)| ** 2) / (2 sigma_theta ** 2)), with
    # ds = sin(theta) cos(angle) - cos(theta) sin(angle), dc = cos(theta) cos(angle) + sin(theta) sin(angle)
    np.sin(theta, out=out)
    out *= np.cos(angle)
    np.cos(theta, out=scratch)
    scratch *= np.sin(angle)
    out -= scratch  # ds
    np.cos(theta, out=scratch)
    scratch *= np.cos(angle)
    np.sin(theta, out=product)
    product *= np.sin(angle)
    scratch += product  # dc
    np.arctan2(out, scratch, out=out)
    np.abs(out, out=out)
    np.square(out, out=out)
    np.negative(out, out=out)
    out /= 2 * sigma_theta**2
    np.exp(out, out=out)
    return out


def _read_only(arrays) -> tuple[np.ndarray, ...]:
    for array in arrays:
        array.flags.writeable = False
    return tuple(arrays)


@functools.lru_cache(maxsize=2)
def _cached_radial_filters(rows: int, cols: int, sigma_onf: float) -> tuple[np.ndarray, ...]:
    return _read_only(_radial_filters(rows, cols, sigma_onf))


@functools.lru_cache(maxsize=2)
def _cached_angular_spreads(rows: int, cols: int) -> tuple[np.ndarray, ...]:
    theta = _frequency_grid(rows, cols)[1]
    scratch, product = np.empty_like(theta), np.empty_like(theta)
    return _read_only([_angular_spread(theta, o, np.empty_like(theta), scratch, product) for o in range(ORIENTATIONS)])


def lpc_map(image: np.ndarray, *, sigma_onf: float = DEFAULT_SIGMA_ONF) -> np.ndarray:
    """The LPC-weighted sharpness map (before cropping and pooling).

    Memory: about 100 bytes per pixel (each filter response is formed, used and overwritten in
    one buffer; every step is the same floating-point operation as the textbook form, so the
    values are identical to it), plus the cached filters of an image of at most
    ``CACHED_FILTER_PIXELS`` pixels.
    """
    image = np.asarray(image, dtype=np.float64)
    rows, cols = image.shape
    cached = rows * cols <= CACHED_FILTER_PIXELS
    if cached:
        radial = _cached_radial_filters(rows, cols, float(sigma_onf))
        spreads = _cached_angular_spreads(rows, cols)
    else:
        radial = _radial_filters(rows, cols, sigma_onf)
        theta = _frequency_grid(rows, cols)[1]
    spectrum = _fft2_inplace(image.astype(np.complex128))
    border = int(round(min(rows, cols) / 16))
    interior = (slice(border, rows - border or None), slice(border, cols - border or None))
    numerator = np.zeros_like(image)
    denominator = np.zeros_like(image)
    scratch, phase, energy = (np.empty_like(image) for _ in range(3))
    spread = None if cached else np.empty_like(image)
    response = np.empty_like(spectrum)
    for orientation in range(ORIENTATIONS):
        if cached:
            spread = spreads[orientation]
        else:  # formed in its buffer, scratch and phase (free until the responses) as work space
            _angular_spread(theta, orientation, spread, scratch, phase)
        for index, (weight, filter_) in enumerate(zip(SCALE_WEIGHTS, radial)):
            np.multiply(spectrum, filter_, out=response)
            response *= spread
            _fft2_inplace(response, inverse=True)
            if index == 0:
                np.abs(response, out=energy)
            np.arctan2(response.imag, response.real, out=scratch)  # np.angle (on the strided parts, as np.angle)
            scratch *= weight
            if index == 0:
                phase[...] = scratch
            else:
                phase += scratch
        coherence = np.cos(phase, out=phase)
        np.maximum(coherence, 0.0, out=coherence)
        values = energy[interior]
        threshold = values.mean() + 2 * values.std(ddof=1)
        energy -= threshold
        np.maximum(energy, 0.0, out=energy)
        coherence *= energy
        numerator += coherence
        denominator += energy
    denominator += C
    numerator /= denominator
    return numerator


def lpc_si(image: np.ndarray, *, sigma_onf: float = DEFAULT_SIGMA_ONF) -> float:
    """LPC-SI of a 0-255 grey image: the sharpness map's values, sorted, pooled with exponential weights."""
    image = np.asarray(image, dtype=np.float64)
    sharpness = lpc_map(image, sigma_onf=sigma_onf)
    border = int(round(min(image.shape) / 16))
    if border:
        sharpness = sharpness[border:-border, border:-border]
    values = np.sort(sharpness.ravel())[::-1]
    # large images: not kept between calls, like the filters
    pooling = _cached_pooling_weights if values.size <= CACHED_FILTER_PIXELS else _pooling_weights
    weights, weight_sum = pooling(values.size)
    return float(np.sum(weights * values) / weight_sum)


def _pooling_weights(count: int) -> tuple[np.ndarray, float]:
    """The exponential weights of the sorted values (largest first) and their sum."""
    weights = np.exp(-(np.arange(count) / max(count - 1, 1)) / BETA_K)
    weights.flags.writeable = False
    return weights, np.sum(weights)


@functools.lru_cache(maxsize=4)
def _cached_pooling_weights(count: int) -> tuple[np.ndarray, float]:
    return _pooling_weights(count)
