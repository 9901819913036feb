"""Image-quality measures (docs/measures.md), each one function with explicit parameters.

Inputs are grey images on the 0-255 scale, as MATLAB takes a uint8 image. The pipeline maps
its float ROIs in [0, 1] to 0-255 by multiplying by 255 (no rounding; ``entropy`` rounds to
uint8 as MATLAB's ``imhist`` would see it). :func:`measure_all` computes every measure for
one ROI and records the parameters.

Large images: an image of more than ``MetricParams.max_pixels`` pixels (config
``metrics.max_pixels``, default 2048 x 2048) is measured on its block mean: the mean of every
k x k block, k the smallest integer that brings it within the limit (the last rows and columns
that do not fill a block are dropped). The limit is recorded with the values (``params``) and
``measure_all(..., details=...)`` reports k. Memory then stays at the image itself plus a
constant (the measures cost up to about 110 bytes per measured pixel, LPC-SI the most), instead
of about 270 bytes per pixel of any size; ROIs (at most 512 x 290) are measured as they are.

| measure | better | reference needed |
|---|---|---|
| entropy, tc, lpc_si | higher | - |
| tmqi (with tmqi_s, tmqi_n) | higher | the original ROI |
| piqe, brisque, niqe | lower | - |
| psnr, ssim | higher | a clean reference |
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import ClassVar

import numpy as np

from xvertnet.errors import InvalidValueError
from xvertnet.metrics.basic import DEFAULT_TC_SCALE, entropy, psnr, ssim, tenengrad
from xvertnet.metrics.lpcsi import DEFAULT_SIGMA_ONF, lpc_si
from xvertnet.metrics.natural_scene import FLAT_RESIDUE, brisque, niqe
from xvertnet.metrics.piqe import piqe
from xvertnet.metrics.task import DEFAULT_BAND, VertebraTask, vertebral_cnr, vertebral_edge_strength
from xvertnet.metrics.tmqi import tmqi
from xvertnet.settings import FromConfig

#: Larger images are measured on their block mean (see the module docstring): 2048 x 2048, the
#: paper's canonical height squared.
DEFAULT_MAX_PIXELS = 2048 * 2048
#: The smallest limit accepted: one NIQE patch.
MIN_MEASURED_PIXELS = 96 * 96

#: Direction of "better" for every measure the tables show (+1 higher, -1 lower).
BETTER = {
    "entropy": 1,
    "tc": 1,
    "lpc_si": 1,
    "tmqi": 1,
    "piqe": -1,
    "brisque": -1,
    "niqe": -1,
    "psnr": 1,
    "ssim": 1,
    "cnr_ratio": 1,
    "edge_ratio": 1,
    "consistency_psnr": 1,
    "consistency_ssim": 1,
    "displayed_contrast": 1,
    "displayed_cnr": 1,
    "displayed_saturation": -1,
    "seg_dice": 1,
    "seg_hd95": -1,
    "seg_asd": -1,
    # the fracture-detectability observer's AUC per patient (xvertnet.evaluation.observer_selection)
    "fracture_auc_behind_heart": 1,
    "fracture_auc_above_heart": 1,
}


@dataclasses.dataclass(frozen=True)
class MetricParams(FromConfig):
    """Parameters of the measures (config section ``metrics``); recorded in every output row."""

    SECTION: ClassVar[str] = "metrics"
    ELSEWHERE: ClassVar[tuple[str, ...]] = ("table_splits", "panel_images", "gallery_images", "detectability_table")

    lpc_sigma_onf: float = DEFAULT_SIGMA_ONF
    tc_intensity_scale: float = DEFAULT_TC_SCALE
    cnr_band: int = DEFAULT_BAND
    niqe_flat_residue: float = FLAT_RESIDUE
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        if not 0.0 < self.lpc_sigma_onf < 1.0:
            raise InvalidValueError(f"lpc_sigma_onf must be in (0, 1), got {self.lpc_sigma_onf}")
        if self.max_pixels < MIN_MEASURED_PIXELS:
            raise InvalidValueError(
                f"max_pixels must be at least {MIN_MEASURED_PIXELS} (96 x 96), got {self.max_pixels}"
            )


def to_255(image: np.ndarray) -> np.ndarray:
    """The pipeline's mapping of a [0, 1] float image to the 0-255 scale the measures expect."""
    return np.asarray(image, dtype=np.float64) * 255.0


def reduction_factor(shape, max_pixels: int) -> int:
    """The block size k at which an image of ``shape`` is measured: 1 up to ``max_pixels`` pixels, else the smallest k
    with (rows // k) * (cols // k) <= max_pixels."""
    rows, cols = int(shape[0]), int(shape[1])
    if rows * cols <= max_pixels:
        return 1
    factor = max(2, math.ceil(math.sqrt(rows * cols / max_pixels)))
    while (rows // factor) * (cols // factor) > max_pixels:
        factor += 1
    return factor


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """float64 mean of every ``factor`` x ``factor`` block (partial blocks dropped), a band of rows at a time
    (no full-size float64 copy of a large image)."""
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    out = np.empty((rows, cols))
    band = max(1, (1 << 22) // max(1, cols * factor * factor))  # block rows per band: about 32 MB of float64
    for top in range(0, rows, band):
        bottom = min(rows, top + band)
        chunk = np.asarray(image[top * factor : bottom * factor, : cols * factor], dtype=np.float64)
        out[top:bottom] = chunk.reshape(bottom - top, factor, cols, factor).mean(axis=(1, 3))
    return out


def measure_all(
    image255: np.ndarray,
    *,
    reference255: np.ndarray | None = None,
    clean255: np.ndarray | None = None,
    task: VertebraTask | None = None,
    params: MetricParams | None = None,
    timings: dict | None = None,
    errors: dict | None = None,
    details: dict | None = None,
) -> dict[str, float]:
    """Every measure of one grey 0-255 image; ``timings`` (if given) receives seconds per measure.

    With ``errors`` given, a measure that fails numerically (e.g. on a flat image) becomes NaN
    and ``errors[name]`` holds the reason, as does a measure that is NaN without failing (BRISQUE
    and NIQE of a constant image, NIQE below 96 x 96); without it the exception propagates.
    numpy's RuntimeWarnings inside the measures are not shown (the NaN and its reason say it).
    The task measures (``cnr``, ``edge``) need ``task``: the vertebra mask, the output on the noise twin and a
    vertebral body's height (:class:`xvertnet.metrics.task.VertebraTask`).
    An image above ``params.max_pixels`` (and its references and mask) is measured on its block
    mean (module docstring); ``details`` (if given) receives ``downsample`` (the block size k,
    1 = as given) and ``measured_shape``.
    """
    params = params or MetricParams()
    mask, twin255, body_px = (task.mask, task.twin255, task.body_px) if task is not None else (None, None, None)
    factor = reduction_factor(np.shape(image255), params.max_pixels)
    if factor > 1:
        image255 = block_mean(image255, factor)
        reference255 = None if reference255 is None else block_mean(reference255, factor)
        clean255 = None if clean255 is None else block_mean(clean255, factor)
        twin255 = None if twin255 is None else block_mean(twin255, factor)
        body_px = None if body_px is None else body_px / factor
        mask = None if mask is None else block_mean(mask, factor) >= 0.5
    image255 = np.asarray(image255, dtype=np.float64)
    if details is not None:
        details.update(downsample=factor, measured_shape=list(image255.shape))
    small = min(image255.shape) < 96
    jobs = {
        "entropy": lambda: entropy(image255),
        "tc": lambda: tenengrad(image255, intensity_scale=params.tc_intensity_scale),
        "lpc_si": lambda: lpc_si(image255, sigma_onf=params.lpc_sigma_onf),
        "piqe": lambda: piqe(image255),
        "brisque": lambda: brisque(image255),
        "niqe": lambda: float("nan") if small else niqe(image255, flat_residue=params.niqe_flat_residue),
    }
    if reference255 is not None:
        jobs["tmqi"] = lambda: tmqi(reference255, image255)
    if clean255 is not None:
        jobs["psnr"] = lambda: psnr(image255, clean255)
        jobs["ssim"] = lambda: ssim(image255, clean255)
    if mask is not None and twin255 is not None:
        twin = np.asarray(twin255, dtype=np.float64) / 255.0
        jobs["cnr"] = lambda: vertebral_cnr(image255 / 255.0, twin, mask, band=params.cnr_band, body_px=body_px)
        jobs["edge"] = lambda: vertebral_edge_strength(image255 / 255.0, twin, mask)
    constant = bool(image255.size) and float(image255.min()) == float(image255.max())
    values: dict[str, float] = {}
    for name, job in jobs.items():
        start = time.perf_counter()
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                result = job()
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
            if errors is None:
                raise
            errors[name] = f"{type(error).__name__}: {error}"
            result = {"tmqi": np.nan, "tmqi_s": np.nan, "tmqi_n": np.nan} if name == "tmqi" else np.nan
        if timings is not None:
            timings[name] = time.perf_counter() - start
        found = result if isinstance(result, dict) else {name: float(result)}
        values.update(found)
        if errors is not None and name not in errors and any(np.isnan(value) for value in found.values()):
            errors[name] = (
                "needs at least 96 x 96 pixels"
                if name == "niqe" and small
                else "undefined on a constant image"
                if constant
                else "undefined on this image"
            )
    return values


__all__ = [
    "BETTER",
    "MetricParams",
    "VertebraTask",
    "block_mean",
    "brisque",
    "entropy",
    "lpc_si",
    "measure_all",
    "niqe",
    "piqe",
    "psnr",
    "reduction_factor",
    "ssim",
    "tenengrad",
    "tmqi",
    "to_255",
    "vertebral_cnr",
    "vertebral_edge_strength",
]
