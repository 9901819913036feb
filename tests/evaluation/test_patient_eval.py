"""Leave-one-patient-out: folds keep patients apart, the fold config is a valid workflow config, the pooled table."""

import json

import numpy as np
import pandas as pd
import pytest

from xvertnet.errors import InvalidValueError
from xvertnet.evaluation.leave_one_patient_out import (
    EvaluationSettings,
    bootstrap_interval,
    do_no_harm_table,
    fold_config,
    folds,
    patient_log_ratios,
    patient_table,
    relative_table,
    sign_flip_p,
    write_report,
)

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
    from repo_paths import REPO, SCHEMA

    from xvertnet.config import load_config, validate_config
    from xvertnet.demo.demo_data import DemoSettings

    base = load_config(REPO / "config.yaml", SCHEMA)
    settings = EvaluationSettings()
    fold = folds(PATIENTS)[1]
    config = validate_config(fold_config(base, fold, settings), SCHEMA)
    assert config["run"] == "lopo-tschest" and config["datasets"] == [
        {
            "name": "lopo-tschest",
            "manifest": "demo",
            **{k: v for k, v in config["datasets"][0].items() if k not in ("name", "manifest")},
        }
    ]
    demo = DemoSettings.from_config(config["demo"])
    splits = {patient.name: {view.split for view in demo.views_of(patient)} for patient in demo.patients}
    assert splits == {"lung1": {"val"}, "tschest": {"test"}, "lidc0001": {"train"}, "lung2": {"train"}}
    assert [view.name for view in demo.views] == list(settings.views) and not demo.include_real


def _rows(images_of=None):
    rng = np.random.default_rng(1)
    rows = []
    for patient, shift in (("a", 0.0), ("b", 0.5), ("c", 1.0)):
        for image in range((images_of or {}).get(patient, 4)):
            for roi in ("upper", "lower"):
                for method, gain in (("original", 1.0), ("xvertnet", 1.5), ("clahe", 1.2)):
                    rows.append(
                        {
                            "patient": patient,
                            "image_id": f"{patient}{image}",
                            "roi": roi,
                            "split": "test",
                            "method": method,
                            "cnr_ratio": gain + shift + rng.normal(0, 0.01),
                        }
                    )
    return pd.DataFrame(rows)


def test_table_reports_patient_and_roi_spread_bootstrap_and_both_tests():
    table = patient_table(_rows(), EvaluationSettings(bootstrap=500)).set_index(["measure", "method"])
    row = table.loc[("cnr_ratio", "xvertnet")]
    assert row["patients"] == 3 and row["rois"] == 24
    assert row["mean_over_patients"] == pytest.approx(2.0, abs=0.01)
    assert row["std_over_patients"] == pytest.approx(0.5, abs=0.01)  # patients differ by 0.5: the spread is theirs
    assert row["ci_low"] < 2.0 < row["ci_high"] and row["ci_high"] - row["ci_low"] > 0.3
    assert json.loads(row["per_patient"]) == pytest.approx({"a": 1.5, "b": 2.0, "c": 2.5}, abs=0.01)
    clahe = table.loc[("cnr_ratio", "clahe")]
    assert clahe["p_rois_wilcoxon"] < 0.001  # 24 ROIs taken as independent
    assert clahe["p_patients_sign_flip"] == pytest.approx(0.25)  # three patients all agree: 2 / 2**3, no smaller
    assert np.isnan(row["p_rois_wilcoxon"]) and np.isnan(row["p_patients_sign_flip"])


def test_the_mean_over_patients_and_its_interval_weigh_patients_equally():
    """A patient with many ROIs does not pull the mean over patients or its bootstrap interval."""
    table = patient_table(_rows({"a": 40, "b": 1, "c": 1}), EvaluationSettings(bootstrap=500)).set_index(
        ["measure", "method"]
    )
    row = table.loc[("cnr_ratio", "xvertnet")]
    assert row["mean_over_patients"] == pytest.approx(2.0, abs=0.01)
    assert row["mean_over_rois"] < 1.6  # the ROI mean is patient a's
    assert row["ci_low"] < 2.0 < row["ci_high"]


def test_bootstrap_over_patients_and_sign_flip():
    rng = np.random.default_rng(0)
    low, high = bootstrap_interval(np.array([0.0, 1.0]), 1000, rng)
    assert low == pytest.approx(0.0) and high == pytest.approx(1.0)  # only 0, 0.5 or 1: whole patients move
    assert np.isnan(bootstrap_interval(np.array([1.0]), 10, rng)[0])
    assert sign_flip_p(np.array([1.0, 1.0, 1.0, 1.0])) == pytest.approx(0.125)
    assert sign_flip_p(np.array([1.0, -1.0, 1.0, -1.0])) == pytest.approx(1.0)


def test_report_names_a_file_it_cannot_use(tmp_path):
    from xvertnet.errors import InputFileError

    per_roi, manifest = tmp_path / "per_roi.csv", tmp_path / "manifest.csv"
    per_roi.write_text("")
    manifest.write_text("image_id,patient\nx,a\n")
    with pytest.raises(InputFileError, match="per_roi.csv: per-ROI table unreadable"):
        write_report([(per_roi, manifest)], tmp_path / "out", EvaluationSettings())
    per_roi.write_text("image_id,split,method\nx,test,original\n")
    manifest.write_text("image_id,path\nx,x.png\n")
    with pytest.raises(InputFileError, match="manifest.csv: has no 'patient' column"):
        write_report([(per_roi, manifest)], tmp_path / "out", EvaluationSettings())


def test_a_patient_named_twice_is_refused():
    from xvertnet.demo.demo_data import DemoSettings
    from xvertnet.errors import XvertnetError

    with pytest.raises(XvertnetError, match="lung1 twice"):
        DemoSettings.from_config({"patients": [{"name": "lung1"}, {"name": "lung1", "split": "test"}]})


def test_every_fold_runs_once_per_training_seed_on_one_shared_data_set():
    from repo_paths import REPO, SCHEMA

    from xvertnet.config import load_config, validate_config

    found = folds(PATIENTS, (0, 1, 2))
    assert len(found) == 12 and len({fold["name"] for fold in found}) == 12
    tschest = [fold for fold in found if fold["test"] == "tschest"]
    assert {fold["dataset"] for fold in tschest} == {"lopo-tschest"} and [f["seed"] for f in tschest] == [0, 1, 2]
    base = load_config(REPO / "config.yaml", SCHEMA)
    settings = EvaluationSettings(segmenters_per_run=2)
    configs = [validate_config(fold_config(base, fold, settings), SCHEMA) for fold in tschest]
    config = configs[2]
    assert config["run"] == "lopo-tschest-s2" and config["datasets"][0]["name"] == "lopo-tschest"
    # Each run its own segmenters: six distinct seeds over the fold's three runs.
    assert config["train"]["seed"] == 2 and config["segmentation_task"]["seeds"] == [4, 5]
    assert sorted(seed for c in configs for seed in c["segmentation_task"]["seeds"]) == [0, 1, 2, 3, 4, 5]
    seeded = [
        name for name, section in config.get("baselines", {}).items() if isinstance(section, dict) and "seed" in section
    ]
    assert seeded and all(config["baselines"][name]["seed"] == 2 for name in seeded)
    with pytest.raises(InvalidValueError, match="training_seeds"):
        folds(PATIENTS, ())


def test_the_spread_between_training_seeds_is_reported_beside_the_mean():
    rows = pd.concat(
        [_rows().assign(seed=seed, cnr_ratio=lambda frame, s=seed: frame["cnr_ratio"] + 0.1 * s) for seed in (0, 1, 2)],
        ignore_index=True,
    )
    table = patient_table(rows, EvaluationSettings(bootstrap=200)).set_index(["measure", "method"])
    row = table.loc[("cnr_ratio", "xvertnet")]
    assert row["seeds"] == 3 and row["std_over_seeds"] == pytest.approx(0.1, abs=0.005)
    assert row["mean_over_patients"] == pytest.approx(2.1, abs=0.01)  # the mean over seeds
    single = patient_table(_rows(), EvaluationSettings(bootstrap=200)).set_index(["measure", "method"])
    assert np.isnan(single.loc[("cnr_ratio", "xvertnet"), "std_over_seeds"])


def _displayed_rows(gains):
    """Two ROIs per patient; ``gains[method][patient]`` times the original's displayed measures and Dice."""
    rows = []
    for patient, base in (("a", 0.05), ("b", 0.08), ("c", 0.03)):
        for roi, wobble in (("upper", 0.9), ("lower", 1.1)):
            for method, by_patient in gains.items():
                gain = by_patient.get(patient, 1.0) if isinstance(by_patient, dict) else by_patient
                rows.append(
                    {
                        "patient": patient,
                        "image_id": f"{patient}-ap",
                        "roi": roi,
                        "split": "test",
                        "method": method,
                        "displayed_contrast": base * wobble * gain,
                        "displayed_cnr": 20 * wobble * gain,
                        "seg_dice": min(0.6 * gain, 1.0),
                    }
                )
    return pd.DataFrame(rows)


GAINS = {
    "original": 1.0,
    "xvertnet": {"a": 1.5, "b": 1.2, "c": 1.25},
    "clahe": {"a": 1.6, "b": 0.9, "c": 1.4},  # better on two patients, 10 % worse on b
    "flat": {"a": 0.97, "b": 0.98, "c": 0.99},  # within a 5 % tolerance everywhere
    "inverts": {"a": -1.0},  # the vertebra darker than its surroundings on patient a
}


def test_every_method_is_summarised_by_patient_as_a_geometric_mean_ratio_with_an_interval():
    settings = EvaluationSettings(bootstrap=500, relative_measures=("displayed_contrast",))
    table = relative_table(_displayed_rows(GAINS), settings).set_index("method")
    xvertnet = table.loc["xvertnet"]
    assert xvertnet["ratio"] == pytest.approx((1.5 * 1.2 * 1.25) ** (1 / 3), rel=1e-6)
    assert json.loads(xvertnet["per_patient"]) == pytest.approx({"a": 1.5, "b": 1.2, "c": 1.25}, rel=1e-3)
    assert xvertnet["ci_low"] >= 1.2 - 1e-9 and xvertnet["ci_high"] <= 1.5 + 1e-9 and xvertnet["above"] == 3
    assert (table.loc["clahe", "above"], table.loc["clahe", "below"]) == (2, 1)
    assert table.loc["original", "ratio"] == pytest.approx(1.0) and table.loc["original", "above"] == 0
    # a ratio, so a global gain of every method's values changes nothing, and the order of patients neither
    scaled = _displayed_rows(GAINS).assign(displayed_contrast=lambda frame: 7.0 * frame["displayed_contrast"])
    assert relative_table(scaled, settings)["ratio"].tolist() == pytest.approx(table["ratio"].tolist())
    # signed: a method that inverts the vertebra on one patient scores 0 there and overall, never a gain
    assert table.loc["inverts", "ratio"] == 0.0 and json.loads(table.loc["inverts", "per_patient"])["a"] == 0.0


def test_the_log_ratio_is_undefined_where_the_original_has_no_positive_mean():
    rows = _displayed_rows({"original": {"b": -1.0}, "xvertnet": 2.0})
    logs = patient_log_ratios(rows[rows["split"] == "test"], "displayed_contrast")
    assert np.isnan(logs.loc["b", "xvertnet"]) and logs.loc["a", "xvertnet"] == pytest.approx(np.log(2.0))


def test_the_do_no_harm_rule_applies_alike_to_every_method_with_its_tolerance():
    harm = do_no_harm_table(_displayed_rows(GAINS), EvaluationSettings(harm_tolerance=0.05)).set_index("method")
    assert harm.loc["xvertnet", "passes"] and harm.loc["original", "passes"] and harm.loc["flat", "passes"]
    assert not harm.loc["clahe", "passes"]  # the baseline is held to the same rule
    assert harm.loc["clahe", "harmed"] == "displayed_contrast (b); displayed_cnr (b); seg_dice (b)"
    assert "displayed_contrast (a)" in harm.loc["inverts", "harmed"]
    strict = do_no_harm_table(_displayed_rows(GAINS), EvaluationSettings(harm_tolerance=0.0)).set_index("method")
    assert not strict.loc["flat", "passes"] and strict.loc["xvertnet", "passes"]
    with pytest.raises(InvalidValueError, match="ratio to the original"):
        EvaluationSettings(do_no_harm=("piqe",))


def test_the_report_writes_the_ratios_and_the_rule_beside_the_table(tmp_path):
    rows = _displayed_rows(GAINS)
    per_roi, manifest = tmp_path / "per_roi.csv", tmp_path / "manifest.csv"
    rows.drop(columns=["patient"]).to_csv(per_roi, index=False)
    rows[["image_id", "patient"]].drop_duplicates().to_csv(manifest, index=False)
    write_report([(per_roi, manifest, 0)], tmp_path / "out", EvaluationSettings(bootstrap=200))
    text = (tmp_path / "out" / "patients.md").read_text()
    assert "## Against the original, patient by patient" in text and "| clahe | no | displayed_contrast (b)" in text
    assert "not measured (one training seed)" in text and "Not measured in these runs" not in text
    assert set(pd.read_csv(tmp_path / "out" / "do_no_harm.csv")["method"]) == set(GAINS)
    # The docs' copy: one screen, headed by the command, commit and machine that made it.
    summary = (tmp_path / "out" / "summary.md").read_text().splitlines()
    assert summary[0].startswith("Made by `make evaluate` at commit ")
    assert summary[2].startswith("| measure | original | xvertnet |")
    contrast = next(line for line in summary if line.startswith("| displayed vertebral contrast ↑"))
    cells = dict(zip(summary[2].strip("|").split(" | ")[1:], contrast.strip(" |").split(" | ")[1:]))
    assert cells["xvertnet"].startswith("**") and cells["original"].endswith("†")  # best; every patient below xvertnet
    assert "#### Do no harm, every method alike" in "\n".join(summary)
    without_dice = rows.drop(columns=["seg_dice"])
    without_dice.drop(columns=["patient"]).to_csv(per_roi, index=False)
    write_report([(per_roi, manifest, 0)], tmp_path / "again", EvaluationSettings(bootstrap=200))
    assert (
        "Not measured in these runs, so left out of the rule: seg_dice."
        in (tmp_path / "again" / "patients.md").read_text()
    )


def test_evaluate_runs_and_reports_a_subset_of_the_training_seeds(tmp_path, monkeypatch, capsys):
    """``xvertnet evaluate --seeds 0``: a first pass over one seed pools only that seed's folds (the others
    need not exist); a seed the config does not list is one line."""
    from command_line import run_cli
    from repo_paths import REPO, SCHEMA

    monkeypatch.chdir(tmp_path)
    for index, test in enumerate(PATIENTS):
        rows = _displayed_rows({"original": 1.0, "xvertnet": 1.2}).assign(
            image_id=lambda frame, t=test: t + "-" + frame["image_id"],
            patient=lambda frame, t=test: t,
            displayed_contrast=lambda frame, i=index: frame["displayed_contrast"] * (1 + 0.1 * i),
        )
        run = tmp_path / "results" / "runs" / f"lopo-{test}-s0" / "metrics"
        run.mkdir(parents=True)
        rows.drop(columns=["patient"]).to_csv(run / "per_roi.csv", index=False)
        raw = tmp_path / "results" / f"lopo-{test}" / "raw"
        raw.mkdir(parents=True)
        rows[["image_id", "patient"]].drop_duplicates().to_csv(raw / "manifest.csv", index=False)
    common = ["--configfile", REPO / "config.yaml", "--schema", SCHEMA, "--out", tmp_path / "out", "--report-only"]
    code, error = run_cli(capsys, "evaluate", *common, "--seeds", "0")
    assert code == 0, error
    pooled = pd.read_csv(tmp_path / "out" / "per_roi.csv")
    assert set(pooled["seed"]) == {0} and set(pooled["patient"]) == set(PATIENTS)
    assert "Training seeds 0:" in (tmp_path / "out" / "patients.md").read_text()
    assert (tmp_path / "out" / "summary.md").read_text().startswith("Made by `make evaluate` at commit ")
    code, error = run_cli(capsys, "evaluate", *common)  # all three seeds: the missing folds are named
    assert code != 0 and "lopo-lidc0001-s1/metrics/per_roi.csv is missing" in error
    code, error = run_cli(capsys, "evaluate", *common, "--seeds", "7")
    assert code != 0 and "--seeds 7 is not one of 0, 1, 2" in error
