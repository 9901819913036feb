"""The DRR physics on analytic phantoms: line integrals, transmitted intensity, quantum noise, contrast blood,
thick slices and the for-presentation step."""

import numpy as np
import pytest

from xvertnet.demo import drr
from xvertnet.demo.presentation import PresentationSettings, bands, present
from xvertnet.demo.xray_detector import (
    Exposure,
    correlated_normal,
    detect,
    expected_counts,
    incident_quanta,
    transmitted,
)

MU_BONE = 0.05  # 1/mm


def cylinder_phantom(radius=60.0, rod_radius=8.0, rod_offset=20.0, voxel=0.5, height=20.0):
    """A water cylinder (axis along S) with a bone rod parallel to it, on axes L-A-S; and its voxel size."""
    n = int(2 * (radius + 5) / voxel)
    s = int(height / voxel)
    centres = (np.arange(n) + 0.5) * voxel - n * voxel / 2
    ll, aa = np.meshgrid(centres, centres, indexing="ij")
    water = (ll**2 + aa**2 <= radius**2).astype(np.float32) * drr.MU_WATER_PER_MM
    rod = (ll - rod_offset) ** 2 + aa**2 <= rod_radius**2
    plane = np.where(rod, MU_BONE, water).astype(np.float32)
    return np.repeat(plane[:, :, None], s, axis=2), np.array([voxel, voxel, voxel])


def chord(radius, u, source_a, distance, centre_l=0.0):
    """Length of the ray from (0, source_a) to (u, detector plane) inside a circle of ``radius`` at (centre_l, 0)."""
    direction = np.stack([u, np.full_like(u, distance)]) / np.hypot(u, distance)
    to_centre = np.array([centre_l, -source_a])[:, None]
    along = (direction * to_centre).sum(axis=0)
    miss = np.sqrt(np.maximum((to_centre**2).sum(axis=0) - along**2, 0.0))
    return 2 * np.sqrt(np.maximum(radius**2 - miss**2, 0.0))


def test_cone_beam_line_integrals_of_a_water_cylinder_with_a_bone_rod_match_the_chord_lengths():
    volume, spacing = cylinder_phantom()
    geometry = drr.Geometry(pixel_mm=0.5, max_slice_mm=10.0)
    line_integral, _ = drr.project(volume, spacing, geometry)
    u, w, source_a, detector_a = drr.detector_grid(volume.shape, spacing, geometry)
    distance = detector_a - source_a
    row = np.argmin(np.abs(w))  # the central row: rays in the L-A plane
    expected = drr.MU_WATER_PER_MM * chord(60.0, u, source_a, distance) + (MU_BONE - drr.MU_WATER_PER_MM) * chord(
        8.0, u, source_a, distance, centre_l=20.0
    )
    inside = chord(59.0, u, source_a, distance) > 0
    inside &= (
        np.abs(chord(8.5, u, source_a, distance, 20.0) - chord(7.5, u, source_a, distance, 20.0)) < 1e-9
    )  # off the rod's rim
    assert np.abs(line_integral[row, inside] - expected[inside]).max() < 0.02 * expected[inside].max()
    # The point source magnifies: the rod's shadow is centred at 20 mm times SID / source-to-rod distance.
    excess = line_integral[row] - drr.MU_WATER_PER_MM * chord(60.0, u, source_a, distance)
    near = np.abs(u - 20.0) < 12.0  # the rod's shadow and a margin
    shadow = float((u[near] * excess[near]).sum() / excess[near].sum())
    magnification = distance / (0.0 - source_a)
    assert shadow == pytest.approx(20.0 * magnification, abs=0.3) and magnification > 1.04


def test_transmitted_intensity_and_quantum_noise_match_the_photon_count():
    line_integral = np.full((200, 200), 2.0)
    exposure = Exposure(scatter_fraction=0.0, mtf_sigma_mm=0.0, scintillator_sigma_mm=0.0)
    assert transmitted(line_integral, exposure) == pytest.approx(np.exp(-2.0))
    quanta = 10000.0
    mean = expected_counts(line_integral, exposure, quanta)
    assert mean == pytest.approx(quanta * np.exp(-2.0))
    signal = detect(line_integral, exposure, np.random.default_rng(0), quanta=quanta)
    counts = quanta * np.exp(-signal)
    assert counts.mean() == pytest.approx(quanta * np.exp(-2.0), rel=0.01)
    assert counts.var() == pytest.approx(quanta * np.exp(-2.0), rel=0.05)  # Poisson: variance = mean
    assert signal.var() == pytest.approx(1.0 / (quanta * np.exp(-2.0)), rel=0.06)  # var(log N) = 1 / N
    # Four times the dose halves the noise.
    quarter = detect(line_integral, exposure, np.random.default_rng(1), quanta=quanta / 4)
    assert quarter.std() == pytest.approx(2 * signal.std(), rel=0.06)


def test_the_scintillator_correlates_the_noise_but_keeps_each_pixels_poisson_variance():
    field = correlated_normal((400, 400), 1.5, np.random.default_rng(0))
    assert field.var() == pytest.approx(1.0, rel=0.05)
    neighbours = np.corrcoef(field[:, :-1].ravel(), field[:, 1:].ravel())[0, 1]
    assert neighbours > 0.5
    exposure = Exposure(scatter_fraction=0.0, mtf_sigma_mm=0.3, scintillator_sigma_mm=0.3)
    signal = detect(np.full((300, 300), 1.0), exposure, np.random.default_rng(2), quanta=5000.0)
    assert signal.var() == pytest.approx(1.0 / (5000.0 * np.exp(-1.0)), rel=0.1)


def test_the_exposure_control_puts_the_stated_quanta_in_the_lung_field():
    line_integral = np.full((100, 100), 1.5)
    exposure = Exposure(scatter_fraction=0.0, mtf_sigma_mm=0.0, scintillator_sigma_mm=0.0)
    quanta = incident_quanta(line_integral, exposure)
    assert quanta * np.exp(-1.5) == pytest.approx(exposure.lung_quanta)
    assert exposure.lung_quanta == pytest.approx(2.5 * 30000 * 0.7**2 * 0.6)


def test_scatter_veils_the_dense_region_most():
    line_integral = np.zeros((200, 200))
    line_integral[:, 100:] = 4.0  # a dense half
    plain = transmitted(line_integral, Exposure(scatter_fraction=0.0))
    veiled = transmitted(line_integral, Exposure(scatter_fraction=0.5))
    ratio = veiled / plain
    assert ratio[100, 190] > ratio[100, 10] > 1.0


def spine_and_heart():
    """A CT-like block: a vertebral body (cortex above 600 HU round trabecular bone of 250 HU) and a heart of
    iodinated blood (300 HU, with a pool of undiluted contrast of 900 HU) in soft tissue; and the body's map."""
    hounsfield = np.full((80, 80, 20), 30.0, dtype=np.float32)
    ll, aa = np.mgrid[:80, :80]
    body = (ll - 40) ** 2 + (aa - 15) ** 2 <= 10**2
    cortex = body & ((ll - 40) ** 2 + (aa - 15) ** 2 >= 9**2)  # a shell 1-2 voxels thick
    heart = (ll - 40) ** 2 + (aa - 55) ** 2 <= 15**2
    pool = (ll - 45) ** 2 + (aa - 55) ** 2 <= 4**2
    for k in range(20):
        hounsfield[:, :, k][body] = 250.0
        hounsfield[:, :, k][cortex] = 900.0
        hounsfield[:, :, k][heart] = 300.0
        hounsfield[:, :, k][pool] = 900.0
    bodies = np.repeat(body[:, :, None], 20, axis=2)
    return hounsfield, bodies, body, heart


def test_contrast_blood_becomes_unenhanced_blood_and_bone_stays_bone():
    hounsfield, bodies, body, heart = spine_and_heart()
    mapped, share = drr.unenhance_blood(hounsfield, (1.5, 1.5, 1.5), bodies)
    assert share > 0
    assert np.abs(mapped[:, :, 10][heart] - drr.UNENHANCED_BLOOD_HU).max() <= 60.0  # the undiluted pool included
    assert mapped[:, :, 10][body] == pytest.approx(hounsfield[:, :, 10][body])


def test_thick_slices_are_interpolated_smoothly_along_the_body_axis():
    ramp = np.tile(np.arange(12, dtype=np.float32), (3, 3, 1))
    thin, spacing = drr.thin_slices(ramp, np.array([0.7, 0.7, 5.0]), 1.5)
    assert spacing[2] == pytest.approx(1.25) and thin.shape[2] == 48
    centres = (np.arange(48) + 0.5) / 4 - 0.5
    inner = (centres > 1) & (centres < 10)
    assert thin[1, 1, inner] == pytest.approx(centres[inner], abs=1e-4)  # a ramp stays a ramp: no steps
    labels, _ = drr.thin_slices(ramp.astype(np.int16), np.array([0.7, 0.7, 5.0]), 1.5, labels=True)
    assert set(np.unique(labels)) <= set(range(12))


def test_the_presentation_bands_sum_to_the_image_and_the_output_is_compressed_into_the_display():
    rng = np.random.default_rng(0)
    rows = np.linspace(0, 1, 256)[:, None]
    image = 3.0 * rows + 0.05 * np.sin(np.arange(256) / 3.0)[None, :] + 0.01 * rng.normal(size=(256, 256))
    details, residual = bands(image, 5, 1.0)
    assert sum(details) + residual == pytest.approx(image)
    shown = present(image, PresentationSettings(), 0.7)
    assert shown.min() >= 0 and shown.max() <= 1

    # Latitude compression: the detail (the sine) fills more of the display than it would after a plain stretch.
    def detail_share(values):
        return np.abs(np.diff(values, axis=1)).mean() / (values.max() - values.min())

    plain = (image - image.min()) / (image.max() - image.min())
    assert detail_share(shown) > 2 * detail_share(plain)
    with pytest.raises(Exception, match="latitude"):
        PresentationSettings(latitude=0.0)


@pytest.mark.parametrize(("rotation", "tilt"), [(4.0, 0.0), (0.0, 3.0), (-4.0, -3.0)])
def test_a_lesion_turned_alone_projects_as_the_difference_of_the_turned_volumes(rotation, tilt):
    """A view's turn is linear: a lesion's change turned in its box (without turning the whole volume) is exactly the
    change of the turned volume, and projected alone it adds what projecting the whole fractured volume adds."""
    from xvertnet.evaluation.fracture import Fracture, fracture_volume
    from xvertnet.evaluation.observer_validation import PHANTOM_SPACING, phantom_spine

    mu, levels = phantom_spine()
    geometry = drr.Geometry(pixel_mm=1.0, rotation=rotation, tilt=tilt)
    box, values, _ = fracture_volume(mu, levels, Fracture(2, "wedge", 2))
    change = values - mu[box]
    fractured = mu.copy()
    fractured[box] = values
    turned, corner = drr.rotate_block(change, [s.start for s in box], mu.shape, PHANTOM_SPACING, geometry)
    whole = drr.rotate(fractured, PHANTOM_SPACING, geometry, order=1) - drr.rotate(
        mu, PHANTOM_SPACING, geometry, order=1
    )
    placed = np.zeros(mu.shape)
    placed[tuple(slice(c, c + n) for c, n in zip(corner, turned.shape))] = turned
    assert np.abs(placed - whole).max() < 1e-6 and np.abs(whole).max() > 0.005

    u, w, source_a, detector_a = drr.detector_grid(mu.shape, PHANTOM_SPACING, geometry)
    alone = drr.cone_sum(
        turned, PHANTOM_SPACING, u, w, source_a, detector_a - source_a, offset=corner, full_shape=mu.shape
    )
    difference = drr.project(fractured, PHANTOM_SPACING, geometry)[0] - drr.project(mu, PHANTOM_SPACING, geometry)[0]
    assert np.abs(alone - difference).max() < 1e-3 * np.abs(difference).max()
