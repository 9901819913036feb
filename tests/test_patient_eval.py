"""Leave-one-patient-out: folds keep patients apart, the fold config is a valid workflow config, the pooled table."""

import json

import numpy as np
import pandas as pd
import pytest

from xvertnet.errors import InvalidValueError
from xvertnet.patient_eval import EvaluationSettings, bootstrap_interval, fold_config, folds, patient_table

PATIENTS = ("lidc0001", "tschest", "lung1", "lung2")


def test_every_patient_is_tested_once_and_never_trained_or_validated_on_in_its_fold():
    found = folds(PATIENTS)
    assert [fold["test"] for fold in found] == list(PATIENTS)
    for fold in found:
        assert fold["test"] != fold["val"] and fold["test"] not in fold["train"] and fold["val"] not in fold["train"]
        assert sorted([fold["test"], fold["val"], *fold["train"]]) == sorted(PATIENTS)
    with pytest.raises(InvalidValueError):
        folds(PATIENTS[:2])


def test_fold_config_is_a_valid_named_run_with_patient_splits():
    from xvertnet.config import load_config, validate_config
    from xvertnet.demo_data import DemoSettings
    from helpers import REPO, SCHEMA

    base = load_config(REPO / "config.yaml", SCHEMA)
    settings = EvaluationSettings()
    fold = folds(PATIENTS)[1]
    config = validate_config(fold_config(base, fold, settings), SCHEMA)
    assert config["run"] == "lopo-tschest" and config["datasets"] == [{"name": "lopo-tschest", "manifest": "demo",
                                                                      **{k: v for k, v in config["datasets"][0].items()
                                                                         if k not in ("name", "manifest")}}]
    demo = DemoSettings.from_config(config["demo"])
    splits = {patient.name: {view.split for view in demo.views_of(patient)} for patient in demo.patients}
    assert splits == {"lung1": {"val"}, "tschest": {"test"}, "lidc0001": {"train"}, "lung2": {"train"}}
    assert [view.name for view in demo.views] == list(settings.views) and not demo.include_real


def _rows():
    rng = np.random.default_rng(1)
    rows = []
    for patient, shift in (("a", 0.0), ("b", 0.5), ("c", 1.0)):
        for image in range(4):
            for roi in ("upper", "lower"):
                for method, gain in (("original", 1.0), ("xvertnet", 1.5), ("clahe", 1.2)):
                    rows.append({"patient": patient, "image_id": f"{patient}{image}", "roi": roi, "split": "test",
                                 "method": method, "cnr_ratio": gain + shift + rng.normal(0, 0.01)})
    return pd.DataFrame(rows)


def test_table_reports_patient_and_roi_spread_bootstrap_and_wilcoxon():
    table = patient_table(_rows(), EvaluationSettings(bootstrap=500)).set_index(["measure", "method"])
    row = table.loc[("cnr_ratio", "xvertnet")]
    assert row["patients"] == 3 and row["rois"] == 24
    assert row["mean_over_patients"] == pytest.approx(2.0, abs=0.01)
    assert row["std_over_patients"] == pytest.approx(0.5, abs=0.01)  # patients differ by 0.5: the spread is theirs
    assert row["ci_low"] < 2.0 < row["ci_high"] and row["ci_high"] - row["ci_low"] > 0.3
    assert json.loads(row["per_patient"]) == pytest.approx({"a": 1.5, "b": 2.0, "c": 2.5}, abs=0.01)
    assert table.loc[("cnr_ratio", "clahe"), "p_vs_reference"] < 0.001
    assert np.isnan(row["p_vs_reference"])


def test_bootstrap_by_patient_keeps_a_patients_rois_together():
    rng = np.random.default_rng(0)
    low, high = bootstrap_interval({"a": np.zeros(100), "b": np.ones(100)}, 1000, rng)
    assert low == pytest.approx(0.0) and high == pytest.approx(1.0)  # only 0, 0.5 or 1: whole patients move
    assert np.isnan(bootstrap_interval({"a": np.ones(3)}, 10, rng)[0])
