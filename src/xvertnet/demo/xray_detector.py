"""From line integrals to what a flat-panel detector records: exposure, scatter, quantum noise, blur, log.

**Exposure.** A chest room's automatic exposure control ends the exposure when the chambers behind
the lung fields have received their air kerma; the quanta a pixel of the lung field detects are

    N_lung = K_lung * q * a^2 * DQE,

with K_lung the detector air kerma there (``detector_air_kerma_ugy``; 2.5 uGy, speed class
400), q the photon fluence per air kerma of the beam (``quanta_per_ugy_mm2``; about 30,000 per
mm^2 per uGy for the IEC 62220-1 beam qualities RQA5-RQA9), a the pixel pitch and DQE the
detector's quantum efficiency at low frequency (0.6 for caesium iodide). The lung field is read as
the 80th percentile of the transmitted intensity inside the body (line integral above 0.3): the
unattenuated beam then carries N_0 = N_lung / that intensity.

**Scatter.** Scatter comes from the whole irradiated neighbourhood: ``scatter_fraction`` times
the primary blurred over ``scatter_sigma_mm`` (a grid leaves a scatter-to-primary ratio of
about 0.5 in the lungs and more in the mediastinum, which it veils most).

**Quantum noise and blur.** The detected quanta are Poisson with mean N_0 * (primary + scatter)
blurred by the presampled MTF (a Gaussian of ``mtf_sigma_mm``: the caesium iodide's light
spread, MTF 0.5 near 1 lp/mm, combined with the pixel aperture); the noise keeps each pixel's Poisson
variance (the mean count) and is correlated between neighbouring pixels by the scintillator's
part of that blur (``scintillator_sigma_mm``), as a real panel's is (normal approximation of the
Poisson count; exact Poisson counts when that part is 0). A motion or focal-spot
blur (``extra_blur_mm``, the ``blur`` condition) acts on the signal before detection.

**Log.** The detector's log response gives -log(counts / N_0): dense tissue is bright. A
for-presentation step (:mod:`xvertnet.demo.presentation`) follows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from xvertnet.errors import InvalidValueError


@dataclasses.dataclass(frozen=True)
class Exposure:
    """How one radiograph is exposed and detected (module docstring); distances in mm."""

    pixel_mm: float = 0.7
    detector_air_kerma_ugy: float = 2.5
    quanta_per_ugy_mm2: float = 30000.0
    dqe: float = 0.6
    scatter_fraction: float = 0.5
    scatter_sigma_mm: float = 40.0
    mtf_sigma_mm: float = 0.3
    scintillator_sigma_mm: float = 0.2
    extra_blur_mm: float = 0.0

    def __post_init__(self):
        for name in ("pixel_mm", "detector_air_kerma_ugy", "quanta_per_ugy_mm2", "dqe"):
            if not getattr(self, name) > 0:
                raise InvalidValueError(f"exposure {name} must be positive, got {getattr(self, name)}")
        if self.scintillator_sigma_mm > self.mtf_sigma_mm:
            raise InvalidValueError("exposure scintillator_sigma_mm is part of the MTF: it cannot exceed mtf_sigma_mm")

    @property
    def lung_quanta(self) -> float:
        """N_lung: quanta a lung-field pixel detects (module docstring)."""
        return self.detector_air_kerma_ugy * self.quanta_per_ugy_mm2 * self.pixel_mm**2 * self.dqe


def transmitted(line_integral: np.ndarray, exposure: Exposure) -> np.ndarray:
    """Primary plus scatter per unit incident beam: exp(-P) + scatter_fraction * blur(exp(-P))."""
    primary = np.exp(-np.asarray(line_integral, dtype=np.float64))
    if exposure.extra_blur_mm > 0:
        primary = ndimage.gaussian_filter(primary, exposure.extra_blur_mm / exposure.pixel_mm, mode="nearest")
    if exposure.scatter_fraction > 0:
        sigma = exposure.scatter_sigma_mm / exposure.pixel_mm
        primary = primary + exposure.scatter_fraction * ndimage.gaussian_filter(primary, sigma, mode="nearest")
    return primary


def incident_quanta(line_integral: np.ndarray, exposure: Exposure) -> float:
    """N_0 that the exposure control gives this patient (module docstring)."""
    intensity = transmitted(line_integral, exposure)
    body = np.asarray(line_integral) > 0.3
    lung = float(np.percentile(intensity[body], 80)) if body.sum() > 100 else float(np.max(intensity))
    return exposure.lung_quanta / max(lung, 1e-12)


def expected_counts(line_integral: np.ndarray, exposure: Exposure, quanta: float) -> np.ndarray:
    """Mean detected quanta per pixel: the transmitted intensity times N_0, blurred by the MTF."""
    counts = quanta * transmitted(line_integral, exposure)
    if exposure.mtf_sigma_mm > 0:
        counts = ndimage.gaussian_filter(counts, exposure.mtf_sigma_mm / exposure.pixel_mm, mode="nearest")
    return counts


def detect(
    line_integral: np.ndarray, exposure: Exposure, rng: np.random.Generator | None, *, quanta: float | None = None
) -> np.ndarray:
    """The detector's log signal -log(counts / N_0) of one exposure (``rng`` None: the noise-free mean)."""
    quanta = incident_quanta(line_integral, exposure) if quanta is None else quanta
    mean = expected_counts(line_integral, exposure, quanta)
    counts = mean
    if rng is not None:
        if exposure.scintillator_sigma_mm > 0:
            counts = mean + np.sqrt(mean) * correlated_normal(
                mean.shape, exposure.scintillator_sigma_mm / exposure.pixel_mm, rng
            )
        else:
            counts = rng.poisson(mean).astype(np.float64)
    return np.log(quanta / np.maximum(counts, 0.5))


def correlated_normal(shape, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian noise correlated by a Gaussian light spread of ``sigma_px`` (the Poisson count of a
    pixel, N, is then mean + sqrt(mean) times it: the normal approximation, exact to about 1/sqrt(N))."""
    white = rng.standard_normal(shape)
    spread = ndimage.gaussian_filter(white, sigma_px, mode="wrap")
    delta = np.zeros((int(8 * sigma_px) + 3,) * 2)
    delta[delta.shape[0] // 2, delta.shape[1] // 2] = 1.0
    norm = float(np.sqrt((ndimage.gaussian_filter(delta, sigma_px, mode="constant") ** 2).sum()))
    return spread / norm
