"""CLAHE's clip limit chosen on other patients: per-patient AUCs that no other patient's images touch, and a nested
choice that follows the rule (best behind the heart, no harm above it, the original kept when nothing beats it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic_data import observer_study

from xvertnet.evaluation import detectability as det
from xvertnet.evaluation.observer_selection import nested_choice, nested_markdown, patient_aucs


def hand_aucs(values: dict) -> pd.DataFrame:
    """{(method, patient): (behind, above)} -> the table patient_aucs makes."""
    rows = []
    for (method, patient), (behind, above) in values.items():
        rows.append({"method": method, "patient": patient, "region": "behind_heart", "auc": behind})
        rows.append({"method": method, "patient": patient, "region": "above_heart", "auc": above})
    return pd.DataFrame(rows).assign(present=10, absent=5)


def test_the_choice_is_made_on_the_other_patients_and_refuses_harm_above_the_heart():
    values = {}
    for patient in ("p1", "p2", "p3"):
        values[("original", patient)] = (0.60, 0.70)
        values[("clahe-a", patient)] = (0.70, 0.72)
        values[("clahe-b", patient)] = (0.80, 0.65 if patient == "p1" else 0.75)  # harms above the heart on p1
    folds = nested_choice(hand_aucs(values), ["clahe-a", "clahe-b"]).set_index("held_out")
    assert folds.loc["p1", "chosen"] == "clahe-b" and folds.loc["p1", "chosen_on"] == "p2, p3"
    assert folds.loc["p1", "auc_held_out"] == pytest.approx(0.80)
    assert folds.loc["p1", "difference_held_out"] == pytest.approx(0.20)
    for patient in ("p2", "p3"):  # p1 among the choosing patients: clahe-b is refused there
        assert folds.loc[patient, "chosen"] == "clahe-a"
        assert folds.loc[patient, "auc_chosen_on"] == pytest.approx(0.70)
        assert folds.loc[patient, "refused"] == "clahe-b harms above the heart (p1)"
    lines = nested_markdown(folds.reset_index(), ["clahe-a", "clahe-b"])
    assert "| p1 | p2, p3 | clahe-b | 0.800 (0.600) | 0.800 (0.600) | +0.200 |" in lines
    assert any(line.startswith("Mean change on the held-out patients: +0.133 AUC.") for line in lines)


def test_a_harm_within_the_tolerance_is_not_harm_and_one_beyond_it_is():
    values = {}
    for patient in ("p1", "p2", "p3"):
        values[("original", patient)] = (0.60, 0.70)
        values[("sharp", patient)] = (0.70, 0.69 if patient == "p1" else 0.70)  # 1.4 % below the original on p1
    assert nested_choice(hand_aucs(values), ["sharp"])["chosen"].tolist() == [
        "sharp",  # p1 held out: p2 and p3 choose, neither harmed
        "none (original kept)",
        "none (original kept)",
    ]
    assert nested_choice(hand_aucs(values), ["sharp"], tolerance=0.02)["chosen"].tolist() == ["sharp"] * 3
    values[("sharp", "p1")] = (0.70, 0.68)  # 2.9 % below: harm at a 2 % tolerance
    assert (
        nested_choice(hand_aucs(values), ["sharp"], tolerance=0.02)["chosen"].tolist()[1:]
        == ["none (original kept)"] * 2
    )
    # the aucs of patient_aucs with an observer column, one observer chosen, give the same folds
    table = hand_aucs(values).assign(observer="cho")
    chosen = table[table["observer"].eq("cho")].drop(columns=["observer"])
    assert nested_choice(chosen, ["sharp"], tolerance=0.02).equals(
        nested_choice(hand_aucs(values), ["sharp"], tolerance=0.02)
    )


def test_nothing_better_than_the_original_keeps_the_original():
    values = {}
    for patient in ("p1", "p2"):
        values[("original", patient)] = (0.70, 0.70)
        values[("clahe-a", patient)] = (0.65, 0.75)
    folds = nested_choice(hand_aucs(values), ["clahe-a"])
    assert folds["chosen"].tolist() == ["none (original kept)"] * 2
    assert folds["difference_held_out"].tolist() == [0.0, 0.0]


def test_a_patients_aucs_come_from_its_own_images_only():
    patches, cases = observer_study(
        {"original": 1.0, "sharp": 4.0},
        patients=("p1", "p2", "p3"),
        views=("ap", "rotl4"),
        levels=4,
        realisations=4,
        size=24,
    )
    settings = det.DetectabilitySettings.from_config({"observer": {"patch_px": 24}, "realisations": 4})
    aucs = patient_aucs(patches, cases, settings).set_index(["method", "patient", "region"])["auc"]
    assert set(aucs.index.get_level_values("patient")) == {"p1", "p2", "p3"}
    for patient in ("p1", "p2", "p3"):
        assert aucs[("sharp", patient, "behind_heart")] > aucs[("original", patient, "behind_heart")]
    changed = {name: values.copy() for name, values in patches.items()}
    other = cases["patient"].eq("p2").to_numpy()
    changed["original"][other] = np.random.default_rng(9).random(changed["original"][other].shape)
    again = patient_aucs(changed, cases, settings).set_index(["method", "patient", "region"])["auc"]
    for patient in ("p1", "p3"):  # p2's images replaced: p1's and p3's numbers do not move
        for region in ("behind_heart", "above_heart"):
            assert again[("original", patient, region)] == aucs[("original", patient, region)]
    assert again[("original", "p2", "behind_heart")] != aucs[("original", "p2", "behind_heart")]


def test_the_design_study_can_be_configured_to_choose_on_the_observer():
    """The per-patient AUCs are measures a study configuration names (higher is better)."""
    from xvertnet.evaluation.study_selection import StudySettings

    settings = StudySettings.from_config(
        {"score": ["fracture_auc_behind_heart"], "do_no_harm": ["fracture_auc_above_heart"], "nested": True}
    )
    assert settings.score == ("fracture_auc_behind_heart",) and settings.do_no_harm == ("fracture_auc_above_heart",)
