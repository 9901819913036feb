"""Vertebral-body masks and levels for a CT without labels.

A CT's vertebral bodies are found in four steps, all on axes L-A-S in Hounsfield units:

1. **The patient**: the largest component above -400 HU in each axial slice (drops the table);
   its left-right centre is the midline.
2. **Candidates** in each axial slice, within ``column_half_width_mm`` of the midline and in the
   posterior ``column_depth`` of the patient (a spine crop is searched whole): tissue above
   ``body_hu`` after light smoothing (trabecular bone is 100-250 HU, discs and muscle less), its
   marrow holes filled but not a hole of the spinal canal's size, opened by ``opening_mm`` to
   detach vessels and psoas, then each component opened by a disk of ``body_fraction`` of its own
   largest inscribed radius: rib heads, pedicles and processes are thinner than a body and go.
3. **The column**: a centre line x(z), y(z), the area-weighted running median of the candidates,
   first of those on the midline, then of those near the line, narrowing three times; in each
   slice the candidate nearest the line (within ``max_line_distance_mm``) is the body. Contrast-
   filled vessels as dense as bone lie off the midline, the heart is larger than any body.
4. **Levels**: the discs are local minima of the body's bone content along the column (and
   slices without a body); the bodies are split there and numbered from the top (1 = most
   superior vertebra in the field of view). Names (T1 ...) are not guessed.

Measured against every reference label set (``benchmarks/vertebra_labels.py``, docs/demo-data.md ("CT
patients")): 3-D Dice 0.58-0.79, AP-projected Dice 0.63-0.88; below the 0.8 aim on three of four
sources, mostly from slices where no body is found (5 mm slices, osteoporotic bodies).

Why not a maintained segmenter: TotalSegmentator and its peers need network weights
(hundreds of MB, a GPU for reasonable time) and are what produced some of the reference labels;
a registration of the one labelled chest CT onto the others (SimpleITK) was the other choice,
but the fields of view differ too much (5 mm slices, cut side walls) for a robust atlas. The
threshold pipeline is validated against every reference label set before use
(``benchmarks/vertebra_labels.py``; docs/demo-data.md ("CT patients")).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage


@dataclasses.dataclass(frozen=True)
class LabellingSettings:
    body_hu: float = 90.0
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
    min_body_volume_mm3: float = 1000.0
    #: Bodies lie within this distance of the column's centre line, mm.
    max_line_distance_mm: float = 10.0
    #: Half-length along the body axis over which the centre line is a running median, mm.
    line_window_mm: float = 30.0
    #: Radius of the opening that detaches vessels and ribs from the body, mm.
    opening_mm: float = 2.5
    #: Holes of this area (mm^2) inside dense tissue are taken for the spinal canal and left open; smaller
    #: holes (marrow darker than the threshold) and larger ones (the marrow of an osteoporotic body inside
    #: its cortex) are filled. Adult canals are 150-350 mm^2, bodies 700-2000 mm^2.
    canal_hole_mm2: tuple[float, float] = (80.0, 450.0)
    #: Smoothing before thresholds, mm (Gaussian sigma).
    smoothing_mm: float = 1.0
    #: Half-width of a vertebral body at most, mm.
    body_half_width_mm: float = 28.0
    #: Shortest vertebra (body + disc) along the body axis, mm.
    min_level_mm: float = 14.0
    #: A disc lowers the bodies' bone content per slice by this share of its neighbourhood's peak at least.
    min_disc_dip: float = 0.2


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


def fill_holes_except_canal(section: np.ndarray, spacing: np.ndarray, settings: LabellingSettings) -> np.ndarray:
    """Fill the holes of a slice's dense tissue except those of a spinal canal's size (filling the canal would
    merge body and arch into one thick blob)."""
    holes = ndimage.binary_fill_holes(section) & ~section
    labels, count = ndimage.label(holes)
    if count == 0:
        return section
    area = ndimage.sum_labels(np.ones(labels.shape), labels, index=np.arange(1, count + 1)) * spacing[0] * spacing[1]
    low, high = settings.canal_hole_mm2
    fill = np.concatenate([[False], (area < low) | (area > high)])
    return section | fill[labels]


def _thick_lobes(section: np.ndarray, spacing: np.ndarray, settings: LabellingSettings) -> np.ndarray:
    """The thick parts of a slice's dense tissue, numbered: each component opened by a disk of ``body_fraction``
    of its own largest inscribed radius (rib heads, processes and pedicles are thinner and go), holes filled;
    parts above ``max_body_area_mm2`` (the heart) are dropped."""
    labels, _ = ndimage.label(section)
    lobes = np.zeros(section.shape, dtype=np.int32)
    pixel_area = spacing[0] * spacing[1]
    count = 0
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        component = np.pad(labels[region] == index, 1)
        radius = ndimage.distance_transform_edt(component, sampling=spacing[:2]).max()
        if radius < settings.min_body_radius_mm:
            continue
        opened = ndimage.binary_opening(component, structure=_disk(settings.body_fraction * radius, spacing))[
            1:-1, 1:-1
        ]
        parts, found = ndimage.label(ndimage.binary_fill_holes(opened))
        for part in range(1, found + 1):
            if (parts == part).sum() * pixel_area <= settings.max_body_area_mm2:
                count += 1
                lobes[region][parts == part] = count
    return lobes


def candidate_bodies(
    hounsfield: np.ndarray, spacing: np.ndarray, settings: LabellingSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Thick dense lobes near the patient's posterior midline, numbered slice by slice (bodies, vessels, joints),
    and the patient's left-right centre per slice in mm (NaN where the slice is empty)."""
    sigma = [settings.smoothing_mm / s for s in spacing[:2]] + [0.0]
    smoothed = ndimage.gaussian_filter(hounsfield.astype(np.float32), sigma)
    patient = patient_mask(hounsfield)
    disk = _disk(settings.opening_mm, spacing)
    xs = np.arange(smoothed.shape[0])[:, None]
    ys = np.arange(smoothed.shape[1])[None, :]
    candidates = np.zeros(smoothed.shape, dtype=np.int32)
    midline = np.full(smoothed.shape[2], np.nan)
    for z in range(smoothed.shape[2]):
        inside = patient[:, :, z]
        if not inside.any():
            continue
        px, py = np.nonzero(inside)
        midline[z] = px.mean() * spacing[0]
        region = np.abs(xs - px.mean()) * spacing[0] <= settings.column_half_width_mm
        if inside.mean() < 0.95:  # a whole patient in the slice (not a spine crop): its posterior part only
            region = region & (ys <= py.min() + settings.column_depth * (py.max() - py.min()))
        dense = fill_holes_except_canal(smoothed[:, :, z] > settings.body_hu, spacing, settings)
        dense = ndimage.binary_opening(dense, structure=disk)
        candidates[:, :, z] = _thick_lobes(dense & region & inside, spacing, settings)
    return candidates, midline


def select_column(
    candidates: np.ndarray, midline: np.ndarray, spacing: np.ndarray, settings: LabellingSettings
) -> np.ndarray:
    """In each slice keep the candidate nearest to the column's centre line (module docstring, step 3);
    ``midline``: the patient's left-right centre per slice, mm."""
    blobs = []  # (z, label map, index, x mm, y mm, area mm^2)
    pixel_area = spacing[0] * spacing[1]
    for z in np.nonzero(candidates.any(axis=(0, 1)))[0]:
        labels = candidates[:, :, z]
        count = int(labels.max())
        index = np.arange(1, count + 1)
        area = ndimage.sum_labels(np.ones(labels.shape), labels, index) * pixel_area
        centres = np.asarray(ndimage.center_of_mass(labels > 0, labels, index)).reshape(-1, 2) * spacing[:2]
        blobs += [(z, labels, i + 1, centres[i, 0], centres[i, 1], area[i]) for i in range(count)]
    selected = np.zeros(candidates.shape, dtype=bool)
    if len(blobs) < 3:
        return selected
    table = np.asarray([(b[0] * spacing[2], b[3], b[4], b[5]) for b in blobs])
    keep = np.abs(table[:, 1] - np.asarray([midline[b[0]] for b in blobs])) <= settings.max_line_distance_mm
    if keep.sum() < 3:
        return selected
    for limit in (
        2 * settings.max_line_distance_mm,
        1.5 * settings.max_line_distance_mm,
        settings.max_line_distance_mm,
    ):
        line = _running_line(table[keep], table[:, 0], settings.line_window_mm)
        distance = np.hypot(table[:, 1] - line[:, 0], table[:, 2] - line[:, 1])
        keep = distance <= limit
        if keep.sum() < 3:
            return selected
    best: dict[int, int] = {}
    for i in np.nonzero(keep)[0]:
        z = blobs[i][0]
        if z not in best or distance[i] < distance[best[z]]:
            best[z] = i
    columns = np.arange(candidates.shape[0]) * spacing[0]
    for z, i in best.items():  # what reaches beyond a body's half-width from the line is a rib head or a vessel
        within = np.abs(columns - line[i, 0]) <= settings.body_half_width_mm
        selected[:, :, z] = (blobs[i][1] == blobs[i][2]) & within[:, None]
    return selected


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2.0)])


def _running_line(kept: np.ndarray, heights: np.ndarray, window_mm: float) -> np.ndarray:
    """The column's centre (x, y) at each height: area-weighted medians of the kept blobs within +-window_mm
    along the body axis (the nearest kept blobs where none is that close), so that the bodies, the largest
    bony blobs, set it rather than the arches; ``kept`` rows are (z mm, x mm, y mm, area mm^2)."""
    line = np.empty((len(heights), 2))
    for row, height in enumerate(heights):
        near = np.abs(kept[:, 0] - height) <= window_mm
        if not near.any():
            near = np.abs(kept[:, 0] - height) == np.abs(kept[:, 0] - height).min()
        line[row] = _weighted_median(kept[near, 1], kept[near, 3]), _weighted_median(kept[near, 2], kept[near, 3])
    return line


def vertebral_bodies(
    hounsfield: np.ndarray, spacing: np.ndarray, settings: LabellingSettings | None = None
) -> np.ndarray:
    """Binary vertebral-body mask of a CT on axes L-A-S (see the module's steps)."""
    settings = settings or LabellingSettings()
    spacing = np.asarray(spacing, dtype=np.float64)
    candidates, midline = candidate_bodies(hounsfield, spacing, settings)
    return select_column(candidates, midline, spacing, settings)


def split_levels(
    bodies: np.ndarray, hounsfield: np.ndarray, spacing: np.ndarray, settings: LabellingSettings | None = None
) -> np.ndarray:
    """Number every body voxel by its vertebra from the top (1 = most superior), cutting at the discs.

    A disc is a minimum of the bodies' bone content per slice (sum of HU above 0) along the body
    axis, smoothed over 1.5 mm, that is the lowest within +-``min_level_mm`` / 2 and at least
    ``min_disc_dip`` below that neighbourhood's peak; cuts closer than ``min_level_mm`` keep the
    lower minimum. Every body voxel gets a level (a cut slice belongs to
    the vertebra above it), so the level map covers exactly the body mask.
    """
    settings = settings or LabellingSettings()
    content = (np.clip(hounsfield, 0, None) * bodies).sum(axis=(0, 1)).astype(np.float64)
    profile = ndimage.gaussian_filter1d(content, max(0.5, 1.5 / spacing[2]))
    present = np.nonzero(content > 0)[0]
    levels = np.zeros(bodies.shape, dtype=np.int16)
    if present.size == 0:
        return levels
    gap = max(1, int(np.ceil(settings.min_level_mm / spacing[2])))
    half = max(1, gap // 2)
    minima = [
        z
        for z in range(present.min() + 1, present.max())
        if profile[z] == profile[max(0, z - half) : z + half + 1].min()
        and profile[z] < (1.0 - settings.min_disc_dip) * profile[max(0, z - half) : z + half + 1].max()
    ]
    cuts: list[int] = []
    for z in sorted(minima, key=lambda z: profile[z]):  # the deepest minima first, then those far enough from them
        if all(abs(z - cut) >= gap for cut in cuts):
            cuts.append(z)
    number_of_slice = 1 + np.searchsorted(
        -np.asarray(sorted(cuts, reverse=True)), -np.arange(bodies.shape[2]), side="right"
    )
    for z in present:
        levels[:, :, z] = np.where(bodies[:, :, z], number_of_slice[z], 0)
    return renumber(levels)


def renumber(levels: np.ndarray) -> np.ndarray:
    """Levels 1, 2, ... without gaps, in their order from the top."""
    found = np.unique(levels[levels > 0])
    lookup = np.zeros(int(levels.max()) + 1, dtype=np.int16)
    lookup[found] = np.arange(1, found.size + 1)
    return lookup[levels]


def reference_bodies(
    vertebrae: np.ndarray, spacing: np.ndarray, settings: LabellingSettings | None = None
) -> np.ndarray:
    """A body mask derived from whole-vertebra labels: in each slice, the thick part of the label (posterior
    elements, pedicles and processes are thinner); for validating against sources that label whole vertebrae."""
    settings = settings or LabellingSettings()
    bodies = np.zeros(vertebrae.shape, dtype=bool)
    for z in np.nonzero(vertebrae.any(axis=(0, 1)))[0]:
        labels = _thick_lobes(vertebrae[:, :, z] > 0, spacing, dataclasses.replace(settings, max_body_area_mm2=np.inf))
        count = int(labels.max())
        if count:
            sizes = ndimage.sum_labels(np.ones(labels.shape), labels, index=np.arange(1, count + 1))
            bodies[:, :, z] = labels == 1 + int(np.argmax(sizes))
    return bodies


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two binary masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * (a & b).sum() / total)
