"""The design study judged by the fracture observer: seeds averaged with their spread, a hallucinating method caught
at the original's sensitivity, no held-out patient among the training patients, and the whole stage on synthetic
scenes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic_data import observer_study

from xvertnet.errors import InvalidValueError
from xvertnet.evaluation import detectability as det
from xvertnet.evaluation.observer_study import (
    ObserverStudySettings,
    check_training_patients,
    false_positive_fractions,
    run_observer_study,
    variant_aucs,
)
from xvertnet.evaluation.observer_study_report import raises_false_positives


def test_a_variant_is_the_mean_of_its_seeds_with_their_spread_beside_it():
    rows = [
        {"method": method, "observer": "cho", "patient": "p1", "region": "behind_heart", "auc": value}
        for method, value in (("v-s0", 0.60), ("v-s1", 0.70), ("v-s2", 0.80), ("original", 0.65))
    ]
    entries = {f"v-s{seed}": {"variant": "v", "seed": seed} for seed in range(3)}
    table = variant_aucs(pd.DataFrame(rows), entries).set_index("method")
    assert table.loc["v", "auc"] == pytest.approx(0.70)
    assert table.loc["v", "seed_sd"] == pytest.approx(0.10)  # sample standard deviation of 0.6, 0.7, 0.8
    assert table.loc["v", "seeds"] == 3
    assert table.loc["original", "seed_sd"] == 0.0 and table.loc["original", "seeds"] == 1


def test_a_method_that_draws_the_lesion_everywhere_raises_false_positives_and_a_plain_gain_does_not():
    patches, cases = observer_study({"original": 3.0, "gain": 6.0}, realisations=8)
    size = patches["original"].shape[-1]
    y, x = np.mgrid[:size, :size] - (size - 1) / 2.0
    band = (np.exp(-((y / 2.0) ** 2)) * (np.abs(x) < 10)).astype(np.float32)
    # a hallucinating method: a lesion-like band, as strong as the original's grade 2, in half the signal-absent patches
    drawn = patches["original"].copy()
    absent_rows = np.flatnonzero(~cases["present"].to_numpy())
    drawn[np.random.default_rng(1).permutation(absent_rows)[: len(absent_rows) // 2]] += 3.0 * 0.04 * band
    patches["draws"] = np.clip(drawn, 0, 1)
    settings = det.DetectabilitySettings(patients=("p1", "p2"), kinds=("wedge", "biconcave"))
    table = false_positive_fractions(patches, cases, settings, fraction=0.1)
    mean = table[table["region"].eq("all")].groupby(["method", "observer"])["false_positive_fraction"].mean()
    absent = int(table["absent"].max())
    for observer in ("cho", "npwe"):
        assert mean[("original", observer)] == pytest.approx(0.1, abs=0.03)  # the operating point itself
        assert raises_false_positives(mean[("draws", observer)], mean[("original", observer)], absent)
        assert not raises_false_positives(mean[("gain", observer)], mean[("original", observer)], absent)


def test_no_held_out_patient_trains_or_stops_a_study_model():
    manifest = pd.DataFrame(
        {"image_id": ["a", "b", "c"], "split": ["train", "val", "test"], "patient": ["lidc0001", "lidc0001", "lung1"]}
    )
    assert check_training_patients({"design-study": manifest}, ("tschest", "lung1")) == ["lidc0001"]
    leaking = manifest.assign(split=["train", "train", "val"])
    with pytest.raises(InvalidValueError, match="lung1 is a held-out patient and trains or stops a study model"):
        check_training_patients({"design-study": leaking}, ("tschest", "LUNG1"))
    with pytest.raises(InvalidValueError, match="no `patient` column"):
        check_training_patients({"d": manifest.drop(columns="patient")}, ("lung1",))
    with pytest.raises(InvalidValueError, match="nested choice needs two or more"):
        ObserverStudySettings(patients=("lung1",))


def _scene(patient: str, strength: float):
    """A synthetic view: a bright column (the spine), six levels (odd ones behind the heart), each lesion a blob."""
    y, x = np.mgrid[:224, :96].astype(np.float32)
    line_integral = 2.0 + np.exp(-(((x - 48) / 10) ** 2)).astype(np.float32)
    rows = [28 + 34 * index for index in range(6)]
    levels = {
        index + 1: {
            "centre": (row, 48),
            "lesion_centre": {"wedge": (row, 48), "biconcave": (row, 48)},
            "region": "behind_heart" if index % 2 else "above_heart",
            "index": index,
        }
        for index, row in enumerate(rows)
    }

    def blob(row, grade):
        return (strength * grade * np.exp(-(((y - row) / 4) ** 2 + ((x - 48) / 6) ** 2))).astype(np.float32)

    differences = {
        (level, kind, grade): blob(info["centre"][0], grade)
        for level, info in levels.items()
        for kind in ("wedge", "biconcave")
        for grade in (1, 2)
    }
    return det.PatientScene(patient, line_integral, levels, differences, {})


def test_the_stage_chooses_nested_tests_the_choice_and_writes_its_page(tmp_path, monkeypatch):
    """Two synthetic patients, two variants of two seeds each (CLAHE at other clip limits stand in for trained chains,
    one of them a composite), the original and CLAHE at two clip limits: every table, the panels and the page."""
    monkeypatch.setattr(det, "patient_scenes", lambda patient, settings, demo: [_scene(patient, 0.15)])
    entries = {
        f"study-{variant}-s{seed}-T1": {
            "method": "clahe",
            "settings": {"clip_limit": limit + 0.001 * seed, **steps},
            "variant": variant,
            "seed": seed,
            "iteration": 1,
        }
        for variant, limit, steps in (
            ("sharp", 0.02, {}),
            ("soft-then-clahe", 0.004, {"then": [{"method": "clahe", "settings": {"clip_limit": 0.01}}]}),
        )
        for seed in (0, 1)
    }
    settings = ObserverStudySettings(patients=("p1", "p2"), views=("ap",), clip_limits=(0.01, 0.03))
    summary = run_observer_study(tmp_path, entries, settings)

    variants = pd.read_csv(tmp_path / "variant_aucs.csv")
    assert set(variants["method"]) == {"original", "clahe-0.01", "clahe-0.03", "sharp", "soft-then-clahe"}
    assert set(variants.loc[variants["method"].eq("sharp"), "seeds"]) == {2}
    assert set(variants["observer"]) == {"cho", "npwe"}
    folds = pd.read_csv(tmp_path / "folds.csv")
    assert list(folds["held_out"]) == ["p1", "p2"] and list(folds["chosen_on"]) == ["p2", "p1"]
    tests = pd.read_csv(tmp_path / "tests.csv")
    assert set(tests["method"]) == {f"study-{summary['tested']}-s{seed}-T1" for seed in (0, 1)}
    assert {"vs_original_p", f"vs_{summary['clahe_best']}_p"} <= set(tests.columns)
    assert summary["clahe_best"] in ("clahe-0.01", "clahe-0.03")
    false_positives = pd.read_csv(tmp_path / "false_positives.csv")
    assert set(false_positives["method"]) == {"original", "clahe-0.01", "clahe-0.03", *entries}
    page = (tmp_path / "summary.md").read_text()
    for part in (
        "± ",
        "Every candidate, chosen on other patients",
        "CLAHE alone",
        "Hallucination check",
        "fracture.png",
    ):
        assert part in page
    for figure in ("fracture.png", "real.png"):
        assert (tmp_path / figure).stat().st_size > 10_000
    assert summary["images_per_method"] == 2 * 2 * (1 + 2 * 2 * 3)  # patients x realisations x (absent + present)
