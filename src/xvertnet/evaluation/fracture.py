"""Simulated vertebral compression fractures in CT, and where a level lies relative to the heart.

**Grades** follow Genant's semi-quantitative method (Genant et al. 1993): a vertebral body is
fractured when a height (anterior, middle or posterior) is reduced against the others; grade 1
(mild) is a 20-25 % reduction, grade 2 (moderate) 25-40 %, grade 3 (severe) more. A lesion here
takes the middle of its grade's range: :data:`GRADE_HEIGHT_LOSS`.

**Types** (the two commonest shapes of an osteoporotic fracture):

* ``wedge``: the anterior height is lost, the posterior wall keeps its height. The superior
  endplate tilts: the height loss of a column of the body is ``loss * (a - a_post) / (a_ant - a_post)``
  with a its antero-posterior position (the posterior and anterior extent of the body in that
  left-right column).
* ``biconcave``: both endplates are depressed at the centre, the ring apophysis (the rim) keeps
  its height: the loss of a column is ``loss * (1 - rho^2)``, rho its normalised distance from the
  body's axial centre (1 on the rim), split equally between the superior and inferior endplates.

**Displacement model.** The body is compressed, not cut. In each axial column (fixed left-right
and antero-posterior position) of the body's footprint, the voxels from the level's inferior to
its superior endplate are resampled into the shortened height (linear interpolation along the
body axis). The cortex of the endplate moves with them and the trabecular bone is squeezed. The
freed height is filled with the disc beyond the endplate in that column, as a disc bulges into a
depressed endplate. The endplates are found in the CT, not taken from the label
(:func:`endplates`): an automatic label covers the thick middle of a body and stops short of
its endplates. Bone mass is not conserved: the impaction band of an acute fracture (denser bone
near the endplate) is not modelled, so the simulated lesion is a pure loss of height, the sign
most readers look for, and a conservative one. The level map follows the same mapping.

The model works on the attenuation volume after thin-slice interpolation (1.5 mm or finer along
the body axis), so a grade-1 loss (about 5 mm of a 25 mm body) spans several slices.

**Regions.** :func:`level_region` tells a level behind the heart from one above it from the CT
itself, at the level's middle slice: in the rows from the front of the vertebral body to
``band_mm`` (120 mm) anterior, the mediastinum is the gap between the nearest lung voxel (HU below
-500) to the patient's right of the body's centre and the nearest to its left; where that gap is
wider than ``heart_width_mm`` (100 mm) in some row, the heart lies in front of the level (the heart
is 100-140 mm wide, the upper mediastinum 40-80 mm). A slice with little lung (under
``lung_area_mm2``) is the neck (above the lungs' centre: counted above the heart) or the abdomen
(``below_diaphragm``). On the four chest CTs this puts the three to four levels above the
diaphragm behind the heart, with single exceptions where the heart's edge meets the lung
obliquely.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from xvertnet.errors import InvalidValueError

#: Genant grade -> the height loss simulated (the middle of the grade's range).
GRADE_HEIGHT_LOSS = {1: 0.225, 2: 0.325}
FRACTURE_TYPES = ("wedge", "biconcave")
REGIONS = ("above_heart", "behind_heart", "below_diaphragm")


@dataclasses.dataclass(frozen=True)
class Fracture:
    """One simulated lesion: the level (as numbered in the level map), its type and Genant grade."""

    level: int
    kind: str
    grade: int

    def __post_init__(self):
        if self.kind not in FRACTURE_TYPES:
            raise InvalidValueError(f"fracture type must be one of {FRACTURE_TYPES}, got '{self.kind}'")
        if self.grade not in GRADE_HEIGHT_LOSS:
            raise InvalidValueError(f"fracture grade must be one of {sorted(GRADE_HEIGHT_LOSS)}, got {self.grade}")

    @property
    def height_loss(self) -> float:
        return GRADE_HEIGHT_LOSS[self.grade]

    @property
    def name(self) -> str:
        return f"{self.kind}-g{self.grade}"


def _column_loss(body: np.ndarray, kind: str, loss: float) -> np.ndarray:
    """Height loss (fraction of the column's height) for each (L, A) column of a body mask (L-A-S box)."""
    footprint = body.any(axis=2)
    l_index, a_index = np.nonzero(footprint)
    out = np.zeros(footprint.shape)
    if kind == "wedge":
        for column in np.unique(l_index):  # the body's own antero-posterior extent in each left-right column
            a = a_index[l_index == column]
            span = max(int(a.max() - a.min()), 1)
            out[column, a] = loss * (a - a.min()) / span
    else:
        centre_l, centre_a = l_index.mean(), a_index.mean()
        radius_l = max(np.abs(l_index - centre_l).max(), 1.0)
        radius_a = max(np.abs(a_index - centre_a).max(), 1.0)
        rho2 = ((l_index - centre_l) / radius_l) ** 2 + ((a_index - centre_a) / radius_a) ** 2
        out[l_index, a_index] = loss * (1.0 - np.clip(rho2, 0.0, 1.0))
    return out


def fracture_volume(
    mu: np.ndarray, levels: np.ndarray, fracture: Fracture, *, spacing=None, search_mm: float = 12.0, margin: int = 2
) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """The fractured body (module docstring): the box it lies in (slices into ``mu``), the box's new attenuation and
    new level map. ``mu`` and ``levels`` are not changed. With ``spacing``, the endplates are looked for up to
    ``search_mm`` beyond the label (:func:`endplates`); without, the label's own extent is taken."""
    mask = levels == fracture.level
    if not mask.any():
        raise InvalidValueError(f"fracture: level {fracture.level} is not in the level map")
    reach = 0 if spacing is None else max(1, int(round(search_mm / float(np.asarray(spacing)[2]))))
    box = _level_box(mask, reach + margin)
    body, values, labels = mask[box], mu[box].astype(np.float64), levels[box]
    new_values, new_labels = values.copy(), labels.copy()
    losses = _column_loss(body, fracture.kind, fracture.height_loss)
    depth = body.shape[2]
    z = np.arange(depth, dtype=np.float64)
    footprint = body.any(axis=2)
    lower, upper, disc_below, disc_above = endplates(values, body, reach)
    bottom, top = float(lower), float(upper)
    height = top - bottom + 1.0
    for l_index, a_index in zip(*np.nonzero(footprint)):
        drop = losses[l_index, a_index] * height
        if drop <= 0:
            continue
        drop_bottom = drop / 2.0 if fracture.kind == "biconcave" else 0.0
        # the body's new faces (voxel k spans k - 0.5 ... k + 0.5); its contents are squeezed between them
        floor, ceiling = bottom - 0.5 + drop_bottom, top + 0.5 - (drop - drop_bottom)
        old = values[l_index, a_index]
        squeezed = np.interp((bottom - 0.5) + (z + 0.0 - floor) * height / (ceiling - floor), z, old)
        share = np.clip(np.minimum(z + 0.5, ceiling) - np.maximum(z - 0.5, floor), 0.0, 1.0)  # of each voxel, body
        beyond = np.where(z > (floor + ceiling) / 2.0, old[disc_above], old[disc_below])  # the discs fill what is freed
        span = (z >= lower) & (z <= upper)
        new_values[l_index, a_index, span] = (share * squeezed + (1.0 - share) * beyond)[span]
        new_labels[l_index, a_index, span & (share < 0.5) & (labels[l_index, a_index] == fracture.level)] = 0
    return box, new_values.astype(mu.dtype), new_labels


def _level_box(mask: np.ndarray, extra: int) -> tuple[slice, ...]:
    """The bounding box of a level's label, ``extra`` slices longer at both ends along the body axis."""
    box = list(ndimage.find_objects(mask.astype(np.int8))[0])
    box[2] = slice(max(box[2].start - extra, 0), min(box[2].stop + extra, mask.shape[2]))
    return tuple(box)


def body_height_mm(mu: np.ndarray, levels: np.ndarray, level: int, spacing, *, search_mm: float = 12.0) -> float:
    """The height of a level's body between the endplates :func:`endplates` finds, mm (a merged or partial
    automatic label gives a height no vertebral body has)."""
    reach = max(1, int(round(search_mm / float(np.asarray(spacing)[2]))))
    mask = levels == level
    box = _level_box(mask, reach)
    lower, upper, _, _ = endplates(mu[box].astype(np.float64), mask[box], reach)
    return (upper - lower + 1) * float(np.asarray(spacing)[2])


def endplates(values: np.ndarray, body: np.ndarray, reach: int) -> tuple[int, int, int, int]:
    """The body's inferior and superior endplate slices and the disc slices below and above (indices along axis 2).

    An automatic label often covers only the thick middle of a body. Along the body axis, the mean
    attenuation over the label's footprint is lowest in a disc: the discs are the minima within
    ``reach`` slices beyond the label. The endplates are the last slices, going out from the label,
    where that mean stays above half-way between the body's median and the disc's value.
    """
    extent = np.flatnonzero(body.any(axis=(0, 1)))
    lower, upper = int(extent[0]), int(extent[-1])
    profile = values[body.any(axis=2)].mean(axis=0)  # mean over the footprint, per slice
    level = float(np.median(profile[lower : upper + 1]))
    depth = len(profile)
    above = range(upper + 1, min(upper + reach + 1, depth))
    below = range(max(lower - reach, 0), lower)
    disc_above = min(above, key=lambda k: profile[k]) if len(above) else min(upper + 1, depth - 1)
    disc_below = min(below, key=lambda k: profile[k]) if len(below) else max(lower - 1, 0)
    while upper + 1 < disc_above and profile[upper + 1] >= 0.5 * (level + profile[disc_above]):
        upper += 1
    while lower - 1 > disc_below and profile[lower - 1] >= 0.5 * (level + profile[disc_below]):
        lower -= 1
    return lower, upper, disc_below, disc_above


def level_region(
    hounsfield: np.ndarray,
    spacing,
    levels: np.ndarray,
    level: int,
    *,
    heart_width_mm: float = 100.0,
    lung_area_mm2: float = 2000.0,
    band_mm: float = 120.0,
) -> str:
    """``above_heart``, ``behind_heart`` or ``below_diaphragm`` for one level (module docstring)."""
    from xvertnet.demo.vertebra_labels import patient_mask

    spacing = np.asarray(spacing, dtype=np.float64)
    mask = levels == level
    slices = np.flatnonzero(mask.any(axis=(0, 1)))
    k = int(slices[len(slices) // 2])
    inside = patient_mask(hounsfield)
    lung = inside & (hounsfield < -500)
    lung_per_slice = lung.sum(axis=(0, 1)) * spacing[0] * spacing[1]
    if lung_per_slice[k] < lung_area_mm2:  # no lung here: the neck or the abdomen
        centre = np.average(np.arange(len(lung_per_slice)), weights=lung_per_slice) if lung_per_slice.sum() else k
        return "above_heart" if k > centre else "below_diaphragm"  # axis 2 grows superior
    section, lung_section = hounsfield[:, :, k], lung[:, :, k]
    l_index, a_index = np.nonzero(mask[:, :, k])
    seed, front = int(round(l_index.mean())), int(a_index.max()) + 1  # axis 1 grows anterior
    widest = 0.0
    for a in range(front, min(front + int(round(band_mm / spacing[1])), section.shape[1])):
        lung_right = np.flatnonzero(lung_section[:seed, a])  # axis 0 grows to the patient's left
        lung_left = np.flatnonzero(lung_section[seed:, a])
        if len(lung_right) and len(lung_left):  # the mediastinum between the two lungs in this row
            widest = max(widest, (seed + lung_left[0] - lung_right[-1] - 1) * spacing[0])
    return "behind_heart" if widest > heart_width_mm else "above_heart"


def example_level(found: dict) -> int:
    """The level the figures show as the example of a scene's levels (``{level: {"region": ...}}``): the middle one
    behind the heart, or the middle one where none is behind it."""
    behind = [level for level, info in found.items() if info["region"] == "behind_heart"]
    return sorted(behind or found)[len(behind or found) // 2]
