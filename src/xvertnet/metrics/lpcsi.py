"""LPC-SI, local phase coherence sharpness index (Hassen, Wang, Salama, IEEE TIP 2013), per METRICS.md.

Higher is sharper (0-1). ``sigma_onf`` (bandwidth of the log-Gabor filters) changes the values
a lot. The default is 0.75, the value hard-coded in the only copy of the authors' code that
carries their release header ("LPC-SI ... Version 1.0, Copyright(c) 2013 Rania Hassen");
copies without the header use 0.33, which stays selectable (config ``metrics.lpc_sigma_onf``).
It is recorded with every result.
"""

from __future__ import annotations

import numpy as np

DEFAULT_SIGMA_ONF = 0.75  # the authors' released lpc_si.m (v1.0)
SCALES = (1.0, 1.5, 2.0)
SCALE_WEIGHTS = (1.0, -3.0, 2.0)
ORIENTATIONS = 8
C = 2.0
BETA_K = 1e-4


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


def lpc_map(image: np.ndarray, *, sigma_onf: float = DEFAULT_SIGMA_ONF) -> np.ndarray:
    """The LPC-weighted sharpness map (before cropping and pooling).

    Memory: about 100 bytes per pixel (each filter response is formed, used and overwritten in
    one buffer; every step is the same floating-point operation as the textbook form, so the
    values are identical to it).
    """
    image = np.asarray(image, dtype=np.float64)
    rows, cols = image.shape
    radius, theta = _frequency_grid(rows, cols)
    lowpass = 1.0 / (1.0 + (radius / 0.45) ** 30)
    radial = []
    for scale in SCALES:
        f0 = 1.0 / (4.0 * scale)
        log_gabor = np.exp(-(np.log(radius / f0) ** 2) / (2 * np.log(sigma_onf) ** 2)) * lowpass
        log_gabor[0, 0] = 0.0
        radial.append(log_gabor)
    del radius, lowpass
    spectrum = _fft2_inplace(image.astype(np.complex128))
    sigma_theta = np.pi / ORIENTATIONS / 1.5
    border = int(round(min(rows, cols) / 16))
    interior = (slice(border, rows - border or None), slice(border, cols - border or None))
    numerator = np.zeros_like(image)
    denominator = np.zeros_like(image)
    spread, scratch, phase, energy = (np.empty_like(image) for _ in range(4))
    response = np.empty_like(spectrum)
    for orientation in range(ORIENTATIONS):
        angle = orientation * np.pi / ORIENTATIONS
        # spread = exp(-(|arctan2(ds, dc)| ** 2) / (2 sigma_theta ** 2)), with
        # ds = sin(theta) cos(angle) - cos(theta) sin(angle), dc = cos(theta) cos(angle) + sin(theta) sin(angle)
        np.sin(theta, out=spread)
        spread *= np.cos(angle)
        np.cos(theta, out=scratch)
        scratch *= np.sin(angle)
        spread -= scratch  # ds
        np.cos(theta, out=scratch)
        scratch *= np.cos(angle)
        np.sin(theta, out=phase)
        phase *= np.sin(angle)
        scratch += phase  # dc
        np.arctan2(spread, scratch, out=spread)
        np.abs(spread, out=spread)
        np.square(spread, out=spread)
        np.negative(spread, out=spread)
        spread /= 2 * sigma_theta**2
        np.exp(spread, out=spread)
        for index, (weight, filter_) in enumerate(zip(SCALE_WEIGHTS, radial)):
            np.multiply(spectrum, filter_, out=response)
            response *= spread
            _fft2_inplace(response, inverse=True)
            if index == 0:
                np.abs(response, out=energy)
            np.arctan2(response.imag, response.real, out=scratch)  # np.angle
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
    count = values.size
    weights = np.exp(-(np.arange(count) / max(count - 1, 1)) / BETA_K)
    return float(np.sum(weights * values) / np.sum(weights))
