"""Simulated compression fractures on a phantom spine: the shape of each type and grade, and a detectability that grows
with grade and with dose as quantum-noise physics says."""

from __future__ import annotations

import numpy as np
import pytest

from xvertnet.errors import InvalidValueError
from xvertnet.evaluation import observer_validation as validation
from xvertnet.evaluation.fracture import GRADE_HEIGHT_LOSS, Fracture, fracture_volume

SPACING = validation.PHANTOM_SPACING
BONE, DISC = validation.BONE, validation.DISC
phantom_spine = validation.phantom_spine


def bone_height(values: np.ndarray, l_index: int, a_index: int) -> float:
    """Slices of bone in one column of a box (partial slices counted by their share of bone)."""
    column = values[l_index, a_index]
    return float(np.clip((column - DISC) / (BONE - DISC), 0.0, 1.0).sum())


def test_a_wedge_fracture_loses_anterior_height_and_keeps_the_posterior_wall():
    mu, levels = phantom_spine()
    for grade in (1, 2):
        box, values, labels = fracture_volume(mu, levels, Fracture(2, "wedge", grade))
        local_l = 32 - box[0].start
        anterior, posterior = 33 - box[1].start, 16 - box[1].start
        assert bone_height(values, local_l, posterior) == pytest.approx(12.0, abs=0.1)
        assert bone_height(values, local_l, anterior) == pytest.approx(12.0 * (1 - GRADE_HEIGHT_LOSS[grade]), abs=0.3)
        assert (labels[local_l, anterior] == 2).sum() < 12 and (labels[local_l, posterior] == 2).sum() == 12
        assert np.array_equal(mu, phantom_spine()[0])  # the input is not changed


def test_a_biconcave_fracture_depresses_both_endplates_at_the_centre_only():
    mu, levels = phantom_spine()
    box, values, _ = fracture_volume(mu, levels, Fracture(2, "biconcave", 2))
    centre_l, centre_a = 32 - box[0].start, 25 - box[1].start
    assert bone_height(values, centre_l, centre_a) == pytest.approx(12.0 * (1 - GRADE_HEIGHT_LOSS[2]), abs=0.5)
    assert bone_height(values, 24 - box[0].start, 16 - box[1].start) == pytest.approx(12.0, abs=0.1)  # the rim
    profile = np.clip((values[centre_l, centre_a] - DISC) / (BONE - DISC), 0, 1)
    bone_slices = np.flatnonzero(profile > 0.5)
    original = np.flatnonzero(np.clip((mu[box][centre_l, centre_a] - DISC) / (BONE - DISC), 0, 1) > 0.5)
    assert bone_slices.min() > original.min() and bone_slices.max() < original.max()  # both endplates moved in


def test_fracture_refuses_unknown_levels_types_and_grades():
    mu, levels = phantom_spine()
    with pytest.raises(InvalidValueError, match="level 9"):
        fracture_volume(mu, levels, Fracture(9, "wedge", 1))
    with pytest.raises(InvalidValueError, match="type"):
        Fracture(1, "burst", 1)
    with pytest.raises(InvalidValueError, match="grade"):
        Fracture(1, "wedge", 3)


def test_detectability_grows_with_grade_and_as_the_square_root_of_dose():
    """The non-prewhitening matched filter (the signal known exactly) on the detector's log signal of the phantom: d'
    of a grade-2 fracture exceeds a grade-1 one, and four times the dose doubles d' (quantum noise only, no anatomy)."""
    for kind in ("wedge", "biconcave"):
        check = validation.phantom_grade_and_dose(kind)
        assert 1.0 < check.values["grade1"] < check.values["grade2"], kind
        assert check.values["dose_ratio"] == pytest.approx(2.0, rel=0.1), kind


def test_the_endplates_are_found_beyond_a_label_that_covers_only_the_middle_of_the_body():
    """An automatic label stops short of the endplates: the fracture finds them in the CT and moves the real one."""
    mu, levels = phantom_spine()
    short = np.where(levels == 2, 0, levels)
    body = levels == 2
    bone_slices = np.flatnonzero(body.any(axis=(0, 1)))
    middle = bone_slices[3:-3]  # the label covers the middle 6 of the body's 12 slices
    short[:, :, middle] = np.where(body[:, :, middle], 2, short[:, :, middle])
    box, values, _ = fracture_volume(mu, short, Fracture(2, "wedge", 2), spacing=SPACING)
    local_l, anterior, posterior = 32 - box[0].start, 33 - box[1].start, 16 - box[1].start
    level_slices = slice(bone_slices.min() - 2 - box[2].start, bone_slices.max() + 3 - box[2].start)  # with its discs
    values = values[:, :, level_slices]
    assert bone_height(values, local_l, posterior) == pytest.approx(12.0, abs=0.1)
    assert bone_height(values, local_l, anterior) == pytest.approx(12.0 * (1 - GRADE_HEIGHT_LOSS[2]), abs=0.3)
    top = bone_slices.max() - box[2].start - level_slices.start
    assert values[local_l, anterior, top] == pytest.approx(DISC, abs=1e-4)  # the real superior endplate went down
