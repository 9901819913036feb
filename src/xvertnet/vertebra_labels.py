"""Vertebral-body masks and levels for a CT without labels (issue 16, item 2).

A CT's vertebral bodies are found in four steps, all on axes L-A-S in Hounsfield units:

1. **The patient**: the largest component above -400 HU in each axial slice (drops the table).
2. **The spinal canal** in each axial slice: a hole (CSF and cord, below ``canal_max_hu``)
   enclosed by bone (above ``bone_hu``), of canal size, near the patient's left-right centre
   and in the posterior half. Where the bony ring is open (intervertebral foramina, discs) the
   canal's centre is interpolated along the body axis from the slices where it was found.
3. **The body** in each slice: tissue above ``body_hu`` (trabecular bone is 100-250 HU; the
   cortex is brighter) after an opening that detaches the aorta, psoas and rib heads, the
   component lying just anterior to the canal, cut at the canal's anterior wall (which drops
   the pedicles and posterior elements) and filled.
4. **Levels**: the discs are the slices where the body's bone density along the column drops;
   the bodies are split there and numbered from the top (1 = most superior vertebra in the
   field of view). Names (T1 ...) are not guessed: the field of view decides which come first.

Why not a maintained segmenter: TotalSegmentator and its peers need network weights
(hundreds of MB, a GPU for reasonable time) and are what produced some of the reference labels;
a registration of the one labelled chest CT onto the others (SimpleITK) was the other choice,
but the fields of view differ too much (5 mm slices, cut side walls) for a robust atlas. The
threshold pipeline is validated against every reference label set before use
(``benchmarks/vertebra_labels.py``; README "CT patients").
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage


@dataclasses.dataclass(frozen=True)
class LabellingSettings:
    body_hu: float = 90.0
    cortical_hu: float = 350.0
    #: The column is looked for within this distance of the patient's left-right centre, mm ...
    column_half_width_mm: float = 45.0
    #: ... and in this posterior fraction of the patient's antero-posterior extent.
    column_depth: float = 0.6
    #: A slice holds a body where the column is at least this thick (largest inscribed radius), mm.
    min_body_radius_mm: float = 7.0
    #: The body is what survives an opening with this fraction of the column's largest inscribed radius.
    body_fraction: float = 0.6
    #: Largest axial area of a body, mm^2 (the heart is larger).
    max_body_area_mm2: float = 2500.0
    #: A body's rim holds this share of cortical bone at least (contrast-filled vessels hold none).
    min_cortical_fraction: float = 0.02
    min_body_volume_mm3: float = 1000.0
    #: Bodies lie within this distance of the column's centre line, mm.
    max_line_distance_mm: float = 10.0
    #: Radius of the opening that detaches vessels and ribs from the body, mm.
    opening_mm: float = 2.5
    #: Smoothing before thresholds, mm (Gaussian sigma).
    smoothing_mm: float = 1.0
    #: Half-width of a vertebral body at most, mm.
    body_half_width_mm: float = 32.0
    #: Shortest vertebra (body + disc) along the body axis, mm.
    min_level_mm: float = 14.0


def patient_mask(hounsfield: np.ndarray) -> np.ndarray:
    """The patient's body in each axial slice (largest component above -400 HU, holes filled)."""
    mask = np.zeros(hounsfield.shape, dtype=bool)
    for z in range(hounsfield.shape[2]):
        labels, count = ndimage.label(hounsfield[:, :, z] > -400)
        if count == 0:
            continue
        sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, count + 1))
        mask[:, :, z] = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    return mask


def _disk(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    rx, ry = (max(1, int(round(radius_mm / s))) for s in spacing[:2])
    x, y = np.ogrid[-rx : rx + 1, -ry : ry + 1]
    return (x * spacing[0]) ** 2 + (y * spacing[1]) ** 2 <= radius_mm**2


def _thick_blobs(section: np.ndarray, spacing: np.ndarray, settings: LabellingSettings) -> np.ndarray:
    """The thick parts of a slice's dense tissue: each component opened by a share of its own inscribed radius."""
    labels, count = ndimage.label(section)
    thick = np.zeros_like(section)
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        component = np.pad(labels[region] == index, 1)
        radius = ndimage.distance_transform_edt(component, sampling=spacing[:2]).max()
        if radius < settings.min_body_radius_mm:
            continue
        opened = ndimage.binary_opening(component, structure=_disk(settings.body_fraction * radius, spacing))[1:-1, 1:-1]
        if opened.sum() * spacing[0] * spacing[1] <= settings.max_body_area_mm2:
            thick[region] |= opened
    return thick


def candidate_bodies(hounsfield: np.ndarray, spacing: np.ndarray, settings: LabellingSettings) -> np.ndarray:
    """Thick dense blobs near the patient's posterior midline, slice by slice (bodies, vessels, joints)."""
    sigma = [settings.smoothing_mm / s for s in spacing[:2]] + [0.0]
    smoothed = ndimage.gaussian_filter(hounsfield.astype(np.float32), sigma)
    patient = patient_mask(hounsfield)
    disk = _disk(settings.opening_mm, spacing)
    xs = np.arange(smoothed.shape[0])[:, None]
    ys = np.arange(smoothed.shape[1])[None, :]
    candidates = np.zeros(smoothed.shape, dtype=bool)
    for z in range(smoothed.shape[2]):
        inside = patient[:, :, z]
        if not inside.any():
            continue
        px, py = np.nonzero(inside)
        region = np.abs(xs - px.mean()) * spacing[0] <= settings.column_half_width_mm
        if inside.mean() < 0.95:  # a whole patient in the slice (not a spine crop): its posterior part only
            region = region & (ys <= py.min() + settings.column_depth * (py.max() - py.min()))
        dense = ndimage.binary_opening(ndimage.binary_fill_holes(smoothed[:, :, z] > settings.body_hu), structure=disk)
        candidates[:, :, z] = _thick_blobs(dense & region & inside, spacing, settings)
    return candidates


def select_column(candidates: np.ndarray, hounsfield: np.ndarray, spacing: np.ndarray, settings: LabellingSettings) -> np.ndarray:
    """In each slice keep the bony blob (cortex at its rim) nearest to the column's smooth centre line.

    The line x(z), y(z) is a quadratic fitted to the bony blobs of all slices, weighted by area,
    dropping blobs far from it and fitting again; vessels (no cortex), the heart (too large) and
    joints or processes (off the line) are left out.
    """
    blobs = []  # (z, label map, index, x mm, y mm, area mm^2)
    cortical = hounsfield > settings.cortical_hu
    pixel_area = spacing[0] * spacing[1]
    for z in np.nonzero(candidates.any(axis=(0, 1)))[0]:
        labels, count = ndimage.label(candidates[:, :, z])
        index = np.arange(1, count + 1)
        rim = ndimage.grey_dilation(labels, size=(3, 3))
        fraction = ndimage.sum_labels(cortical[:, :, z], rim, index) / np.maximum(ndimage.sum_labels(np.ones(rim.shape), rim, index), 1)
        area = ndimage.sum_labels(np.ones(labels.shape), labels, index) * pixel_area
        centres = np.asarray(ndimage.center_of_mass(labels > 0, labels, index)).reshape(-1, 2) * spacing[:2]
        for i in range(count):
            if fraction[i] >= settings.min_cortical_fraction:
                blobs.append((z, labels, i + 1, centres[i, 0], centres[i, 1], area[i]))
    selected = np.zeros(candidates.shape, dtype=bool)
    if len(blobs) < 3:
        return selected
    table = np.asarray([(b[0] * spacing[2], b[3], b[4], b[5]) for b in blobs])
    keep = np.ones(len(blobs), dtype=bool)
    for limit in (3 * settings.max_line_distance_mm, 2 * settings.max_line_distance_mm, settings.max_line_distance_mm):
        fit = [np.polyfit(table[keep, 0], table[keep, axis], deg=min(2, keep.sum() - 1), w=np.sqrt(table[keep, 3]))
               for axis in (1, 2)]
        distance = np.hypot(table[:, 1] - np.polyval(fit[0], table[:, 0]), table[:, 2] - np.polyval(fit[1], table[:, 0]))
        keep = distance <= limit
        if keep.sum() < 3:
            return selected
    best: dict[int, int] = {}
    for i in np.nonzero(keep)[0]:
        z = blobs[i][0]
        if z not in best or distance[i] < distance[best[z]]:
            best[z] = i
    for z, i in best.items():
        selected[:, :, z] = blobs[i][1] == blobs[i][2]
    return selected


def vertebral_bodies(hounsfield: np.ndarray, spacing: np.ndarray, settings: LabellingSettings | None = None) -> np.ndarray:
    """Binary vertebral-body mask of a CT on axes L-A-S (see the module's steps)."""
    settings = settings or LabellingSettings()
    spacing = np.asarray(spacing, dtype=np.float64)
    return select_column(candidate_bodies(hounsfield, spacing, settings), hounsfield, spacing, settings)


def split_levels(bodies: np.ndarray, hounsfield: np.ndarray, spacing: np.ndarray,
                 settings: LabellingSettings | None = None) -> np.ndarray:
    """Number the bodies from the top (1 = most superior) by cutting at the discs.

    A disc is a local minimum, at least ``min_level_mm`` from the next, of the body's bone
    content per slice (area x mean HU) along the body axis; slices without body are gaps too.
    """
    settings = settings or LabellingSettings()
    content = (np.clip(hounsfield, 0, None) * bodies).sum(axis=(0, 1)).astype(np.float64)
    profile = ndimage.gaussian_filter1d(content, max(0.5, 1.5 / spacing[2]))
    half = max(1, int(round(settings.min_level_mm / spacing[2] / 2)))
    cuts = [z for z in range(len(profile))
            if content[z] == 0 or (profile[z] == profile[max(0, z - half) : z + half + 1].min() and 0 < z < len(profile) - 1)]
    levels = np.zeros(bodies.shape, dtype=np.int16)
    number, run = 0, False
    for z in range(bodies.shape[2] - 1, -1, -1):  # z grows superior: number from the top down
        if z in cuts or not bodies[:, :, z].any():
            run = False
            continue
        if not run:
            number, run = number + 1, True
        levels[:, :, z] = np.where(bodies[:, :, z], number, 0)
    return levels


def reference_bodies(vertebrae: np.ndarray, spacing: np.ndarray, settings: LabellingSettings | None = None) -> np.ndarray:
    """A body mask derived from whole-vertebra labels: in each slice, the thick part of the label (posterior
    elements, pedicles and processes are thinner); for validating against sources that label whole vertebrae."""
    settings = settings or LabellingSettings()
    bodies = np.zeros(vertebrae.shape, dtype=bool)
    for z in np.nonzero(vertebrae.any(axis=(0, 1)))[0]:
        thick = _thick_blobs(ndimage.binary_fill_holes(vertebrae[:, :, z] > 0), spacing, dataclasses.replace(
            settings, max_body_area_mm2=np.inf))
        labels, count = ndimage.label(thick)
        if count:
            sizes = ndimage.sum_labels(np.ones(labels.shape), labels, index=np.arange(1, count + 1))
            bodies[:, :, z] = labels == 1 + int(np.argmax(sizes))
    return bodies


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two binary masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * (a & b).sum() / total)
