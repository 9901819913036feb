"""Image-quality measures (METRICS.md), each one function with explicit parameters.

Inputs are grey images on the 0-255 scale, as MATLAB takes a uint8 image. The pipeline maps
its float ROIs in [0, 1] to 0-255 by multiplying by 255 (no rounding; ``entropy`` rounds to
uint8 as MATLAB's ``imhist`` would see it). :func:`measure_all` computes every measure for
one ROI and records the parameters.

| measure | better | reference needed |
|---|---|---|
| entropy, tc, lpc_si | higher | - |
| tmqi (with tmqi_s, tmqi_n) | higher | the original ROI |
| piqe, brisque, niqe | lower | - |
| psnr, ssim | higher | a clean reference |
"""

from __future__ import annotations

import dataclasses
import time
from typing import ClassVar

import numpy as np

from ..settings import FromConfig

from .basic import DEFAULT_TC_SCALE, entropy, psnr, ssim, tenengrad
from .lpcsi import DEFAULT_SIGMA_ONF, lpc_si
from .natural_scene import FLAT_RESIDUE, brisque, niqe
from .piqe import piqe
from .task import DEFAULT_BAND, vertebral_cnr, vertebral_edge_strength
from .tmqi import tmqi

#: Direction of "better" for every measure the tables show (+1 higher, -1 lower).
BETTER = {"entropy": 1, "tc": 1, "lpc_si": 1, "tmqi": 1, "piqe": -1, "brisque": -1, "niqe": -1, "psnr": 1, "ssim": 1,
          "cnr_ratio": 1, "edge_ratio": 1, "consistency_psnr": 1, "consistency_ssim": 1}


@dataclasses.dataclass(frozen=True)
class MetricParams(FromConfig):
    """Parameters of the measures (config section ``metrics``); recorded in every output row."""

    SECTION: ClassVar[str] = "metrics"
    ELSEWHERE: ClassVar[tuple[str, ...]] = ("table_splits", "panel_images")

    lpc_sigma_onf: float = DEFAULT_SIGMA_ONF
    tc_intensity_scale: float = DEFAULT_TC_SCALE
    cnr_band: int = DEFAULT_BAND
    niqe_flat_residue: float = FLAT_RESIDUE


def to_255(image: np.ndarray) -> np.ndarray:
    """The pipeline's mapping of a [0, 1] float image to the 0-255 scale the measures expect."""
    return np.asarray(image, dtype=np.float64) * 255.0


def measure_all(image255: np.ndarray, *, reference255: np.ndarray | None = None, clean255: np.ndarray | None = None,
                mask: np.ndarray | None = None, params: MetricParams | None = None, timings: dict | None = None,
                errors: dict | None = None) -> dict[str, float]:
    """Every measure of one grey 0-255 image; ``timings`` (if given) receives seconds per measure.

    With ``errors`` given, a measure that fails numerically (e.g. on a flat image) becomes NaN
    and ``errors[name]`` holds the reason; without it the exception propagates.
    """
    params = params or MetricParams()
    image255 = np.asarray(image255, dtype=np.float64)
    jobs = {
        "entropy": lambda: entropy(image255),
        "tc": lambda: tenengrad(image255, intensity_scale=params.tc_intensity_scale),
        "lpc_si": lambda: lpc_si(image255, sigma_onf=params.lpc_sigma_onf),
        "piqe": lambda: piqe(image255),
        "brisque": lambda: brisque(image255),
        "niqe": lambda: niqe(image255, flat_residue=params.niqe_flat_residue) if min(image255.shape) >= 96 else float("nan"),
    }
    if reference255 is not None:
        jobs["tmqi"] = lambda: tmqi(reference255, image255)
    if clean255 is not None:
        jobs["psnr"] = lambda: psnr(image255, clean255)
        jobs["ssim"] = lambda: ssim(image255, clean255)
    if mask is not None:
        jobs["cnr"] = lambda: vertebral_cnr(image255 / 255.0, mask, band=params.cnr_band)
        jobs["edge"] = lambda: vertebral_edge_strength(image255 / 255.0, mask)
    values: dict[str, float] = {}
    for name, job in jobs.items():
        start = time.perf_counter()
        try:
            result = job()
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
            if errors is None:
                raise
            errors[name] = f"{type(error).__name__}: {error}"
            result = {"tmqi": np.nan, "tmqi_s": np.nan, "tmqi_n": np.nan} if name == "tmqi" else np.nan
        if timings is not None:
            timings[name] = time.perf_counter() - start
        if isinstance(result, dict):
            values.update(result)
        else:
            values[name] = float(result)
    return values


__all__ = ["BETTER", "MetricParams", "brisque", "entropy", "lpc_si", "measure_all", "niqe", "piqe", "psnr", "ssim",
           "tenengrad", "tmqi", "to_255", "vertebral_cnr", "vertebral_edge_strength"]
