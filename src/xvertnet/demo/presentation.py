"""The vendor-like for-presentation step: what turns a detector's log signal into the radiograph a reader sees.

Every public chest data set (and every PACS) holds *for-presentation* images: the modality has
already equalised the dynamic range and shaped the contrast, most often by multi-scale contrast
equalisation (Agfa's MUSICA, Vuylsteke and Schoeters 1994; similar methods from every vendor) and a
tone curve. The DRRs go through such a step, so that the "original" every method starts from is
what a reader would be shown, not a raw log image.

1. **Exposure recognition**: the log signal is mapped to [0, 1] by its 0.5th and 99.5th
   percentiles (the collimated field).
2. **Multi-scale contrast equalisation** on a Laplacian stack without decimation: bands
   b_k = G_k - G_{k+1} (G_0 the image, G_k a Gaussian blur of sigma ``pixel_mm``-independent
   ``finest_mm`` * 2^(k-1) mm for k >= 1), k = 0 ... ``levels`` - 1, and the residual G_L. Each
   band but the finest is mapped by the MUSICA non-linearity

       b'_k = gain * M_k * sign(b_k) * (|b_k| / M_k)^p,     M_k = max |b_k|

   (``exponent`` p < 1 lifts faint detail relative to strong edges); the finest band (edges and
   quantum noise) is amplified linearly by ``edge_gain``, a vendor's edge enhancement, so faint
   noise is not lifted more than strong edges; the residual (the global dynamic range) is
   compressed by ``latitude``: G'_L = mean + latitude * (G_L - mean). The image is the sum.
3. **Tone curve**: a sigmoid of ``tone_slope`` around the median, rescaled to [0, 1] between the
   0.05th and 99.95th percentiles (the S-shaped characteristic of a film-like rendering; the
   equalised image before it is rescaled the same way, so the dense mediastinum is not clipped).

The output is in [0, 1], bone bright, quantised by the caller. The defaults were chosen by comparing
DRRs with the four real radiographs at hand (``benchmarks/drr_realism.py``: histogram, power
spectrum slope, energy in the band of a vertebral body, region ratios), never with any method's
result.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
from scipy import ndimage

from xvertnet.errors import InvalidValueError
from xvertnet.settings import FromConfig


@dataclasses.dataclass(frozen=True)
class PresentationSettings(FromConfig):
    """The for-presentation step (config section ``presentation``; module docstring)."""

    SECTION: ClassVar[str] = "presentation"

    levels: int = 6
    finest_mm: float = 1.0
    exponent: float = 0.7
    gain: float = 1.0
    edge_gain: float = 2.0
    latitude: float = 0.4
    tone_slope: float = 2.5

    def __post_init__(self):
        if self.levels < 1:
            raise InvalidValueError(f"presentation levels must be at least 1, got {self.levels}")
        if not 0.0 < self.exponent <= 1.0:
            raise InvalidValueError(f"presentation exponent must be in (0, 1], got {self.exponent}")
        if not 0.0 < self.latitude <= 1.0:
            raise InvalidValueError(f"presentation latitude must be in (0, 1], got {self.latitude}")
        if self.finest_mm <= 0 or self.gain <= 0 or self.edge_gain <= 0 or self.tone_slope < 0:
            raise InvalidValueError(
                "presentation finest_mm, gain and edge_gain must be positive, tone_slope not negative"
            )


def _limits(values: np.ndarray, low_percentile: float, high_percentile: float) -> tuple[float, float]:
    low, high = np.percentile(values, (low_percentile, high_percentile))
    return float(low), float(high)


def _apply(values: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    low, high = limits
    return np.clip((values - low) / (high - low), 0.0, 1.0) if high > low else np.zeros_like(values)


def bands(image: np.ndarray, levels: int, finest_px: float) -> tuple[list[np.ndarray], np.ndarray]:
    """The Laplacian stack (module docstring): ``levels`` bands, finest first, and the residual; their sum is the image."""
    blurred = [np.asarray(image, dtype=np.float64)]
    for k in range(1, levels + 1):
        blurred.append(ndimage.gaussian_filter(blurred[0], finest_px * 2.0 ** (k - 1), mode="reflect"))
    return [blurred[k] - blurred[k + 1] for k in range(levels)], blurred[-1]


def present(
    log_signal: np.ndarray, settings: PresentationSettings, pixel_mm: float, *, like: np.ndarray | None = None
) -> np.ndarray:
    """The for-presentation image in [0, 1] of a detector log signal (bone bright).

    With ``like`` (another log signal of the same view), every image-dependent parameter (the
    windows, each band's M_k, the residual's mean, the tone curve's centre) is taken from ``like``:
    the same mapping applied to a second image (a bone-emphasised target rendered as its image is).
    """
    fixed = None if like is None else _render(like, settings, pixel_mm)[1]
    return _render(log_signal, settings, pixel_mm, fixed)[0]


def _render(
    log_signal: np.ndarray, settings: PresentationSettings, pixel_mm: float, fixed: dict | None = None
) -> tuple[np.ndarray, dict]:
    """Steps 1-3 of the module docstring; every image-dependent parameter is measured on ``log_signal`` unless
    ``fixed`` gives it. Returns the image and the parameters used."""
    used: dict = {}

    def parameter(name, measure):
        used[name] = fixed[name] if fixed is not None else measure()
        return used[name]

    values = np.asarray(log_signal, dtype=np.float64)
    image = _apply(values, parameter("limits", lambda: _limits(values, 0.5, 99.5)))
    details, residual = bands(image, settings.levels, settings.finest_mm / pixel_mm)
    mean = parameter("mean", lambda: float(residual.mean()))
    peaks = parameter("peaks", lambda: [float(np.abs(band).max()) for band in details])
    out = mean + settings.latitude * (residual - mean)
    for k, (band, peak) in enumerate(zip(details, peaks)):
        if k == 0:
            out += settings.edge_gain * band  # linear: the vendor's edge enhancement
        elif peak > 0:
            out += settings.gain * peak * np.sign(band) * (np.abs(band) / peak) ** settings.exponent
    out = _apply(out, parameter("out_limits", lambda: _limits(out, 0.05, 99.95)))
    if settings.tone_slope > 0:
        centre = parameter("centre", lambda: float(np.median(out)))
        curve = 1.0 / (1.0 + np.exp(-settings.tone_slope * (out - centre)))
        out = _apply(curve, parameter("tone_limits", lambda: _limits(curve, 0.05, 99.95)))
    return out, used
