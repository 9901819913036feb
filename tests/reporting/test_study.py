"""Internal learning (XVertNet trained on the image it enhances) and the design study's judgement."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from repo_paths import REPO, SCHEMA
from synthetic_data import synthetic_shards

from xvertnet.config import ConfigError, load_config
from xvertnet.errors import InvalidValueError
from xvertnet.evaluation.study_selection import (
    NESTED,
    StudySettings,
    choose_on_patients,
    label_groups,
    nested_selection,
    recommend,
    refused_on_selection,
    selection_score,
    summarise,
)
from xvertnet.io.shard_store import iter_items, open_shard_for_writing
from xvertnet.methods import get_method
from xvertnet.model.internal_learning import INTERNAL_SPLIT, train_internal_chain, write_image_shard
from xvertnet.model.training import TrainConfig
from xvertnet.model.training_data import find_crops
from xvertnet.reporting.study import StudyRun, panel_image_ids, write_study
from xvertnet.reporting.study_markdown import goal_markdown, nested_markdown
from xvertnet.stages.enhance_shard import enhance_rois_shard


def _internal_config(**changes) -> TrainConfig:
    values = {
        "phase1_epochs": 4,
        "phase2_epochs": 2,
        "batch_size": 2,
        "patience": 50,
        "precision": "fp32",
        "model": {"base_width": 4, "depth": 2, "in_channels": 1, "output_head": "anchored"},
        "inputs": ["X"],
    }
    values.update(changes)
    return TrainConfig.from_dict(values)


@pytest.fixture(scope="module")
def prep_shard(tmp_path_factory):
    return synthetic_shards(tmp_path_factory.mktemp("prep"))[0]


def test_the_private_shard_holds_only_that_image(prep_shard, tmp_path):
    write_image_shard(prep_shard, "img01", tmp_path / "one.h5")
    crops = find_crops([tmp_path / "one.h5"], INTERNAL_SPLIT)
    assert {crop.image_id for crop in crops} == {"img01"} and len(crops) == 2  # its two training crops
    assert find_crops([tmp_path / "one.h5"], "train") == []


def test_internal_chain_trains_each_iteration_on_the_image(prep_shard, tmp_path):
    chain, record = train_internal_chain(prep_shard, "img01", _internal_config(), 2, tmp_path / "work")
    assert len(chain.models) == 2 and [step["epochs"] for step in record["iterations"]] == [6, 6]
    _, arrays, _ = next(iter_items(prep_shard))
    output = chain.run(arrays["eval_upper/X"])
    assert output.shape == arrays["eval_upper/X"].shape and np.isfinite(output).all()
    other, _ = train_internal_chain(prep_shard, "img02", _internal_config(), 1, tmp_path / "other")
    first = dict(chain.models[0].named_parameters())
    differs = any(
        not np.allclose(first[name].detach(), value.detach()) for name, value in other.models[0].named_parameters()
    )
    assert differs  # another image, another model


def test_internal_enhancer_enhances_every_image_with_its_own_model(prep_shard, tmp_path):
    roi_shard = tmp_path / "roi.h5"
    with open_shard_for_writing(roi_shard, stage="roi", params={}) as shard:
        for image_id, arrays, _ in iter_items(prep_shard):
            canonical = arrays["train_upper/X"]  # the evaluation ROIs are cut from it, as the ROI stage does
            height, width = arrays["eval_upper/X"].shape
            boxes = {"eval_upper": [0, 0, height, width], "eval_lower": [canonical.shape[0] - height, 0, height, width]}
            shard.add(
                image_id,
                {
                    "eval_upper": canonical[:height, :width],
                    "eval_lower": canonical[-height:, :width],
                    "canonical": canonical,
                },
                {"split": "test" if image_id != "img00" else "train", "boxes": boxes},
            )
    train = _internal_config(phase2_epochs=0).record()
    method = get_method("xvertnet-internal", {"train": train, "iterations": 1, "prep": str(prep_shard)})
    count = enhance_rois_shard(
        method,
        roi_shard,
        tmp_path / "out.h5",
        tmp_path / "png",
        name="internal",
        dataset="synthetic",
        splits=("test",),
        whole=True,
    )
    assert count == 3
    with h5py.File(tmp_path / "out.h5") as handle:
        assert sorted(handle["items"]) == ["img01", "img02", "img03"]
        group = handle["items/img02"]
        assert set(group) == {"eval_upper", "eval_lower", "whole"}
        assert json.loads(group.attrs["internal_training"])["image_id"] == "img02"
        params = json.loads(handle.attrs["params"])
        assert (params["method"], params["kind"], params["dataset"]) == ("internal", "xvertnet-internal", "synthetic")
    assert len(list((tmp_path / "png").glob("*.png"))) == 9


def _study_fixture(sigma_onf=0.75):
    """Two variants: 'tuned' best on the selection DRRs, 'steady' best on the held-out ones."""
    manifest = pd.DataFrame(
        {
            "image_id": ["sel_clean", "sel_blur", "sel_8bit", "ap_standard", "ap_8bit", "real1"],
            "split": ["val", "val", "val", "test", "test", "test"],
            "view": ["tilt", "tilt", "tilt", "ap", "ap", "pa"],
            "condition": ["standard", "blur", "8bit", "standard", "8bit", "real"],
        }
    )
    cnr = {"original": 1.0, "clahe": 1.1, "study-tuned-T1": 1.3, "study-steady-T1": 1.05}
    held_out_cnr = {"original": 1.0, "clahe": 1.1, "study-tuned-T1": 0.9, "study-steady-T1": 1.2}
    rows = []
    for method in cnr:
        for _, image in manifest.iterrows():
            for roi in ("upper", "lower"):
                is_real = image["condition"] == "real"
                held = image["split"] == "test"
                ratio = np.nan if is_real else (held_out_cnr if held else cnr)[method]
                rows.append(
                    {
                        "dataset": "demo",
                        "image_id": image["image_id"],
                        "split": image["split"],
                        "roi": roi,
                        "method": method,
                        "cnr_ratio": ratio,
                        "edge_ratio": ratio,
                        "entropy": 7.0 + (method == "clahe"),
                        "tc": 0.1,
                        "lpc_si": 0.9,
                        "tmqi": 0.8,
                        "piqe": 30.0 - 5 * (method == "study-steady-T1"),
                        "brisque": 30.0,
                        "niqe": 5.0,
                        "params": json.dumps({"lpc_sigma_onf": sigma_onf}, sort_keys=True),
                    }
                )
    return pd.DataFrame(rows), {"demo": manifest}


def test_groups_follow_the_selection_rule():
    per_roi, manifests = _study_fixture()
    table = label_groups(
        per_roi, manifests, select_split="val", select_conditions=["standard", "blur"], report_split="test"
    )
    groups = table.drop_duplicates("image_id").set_index("image_id")["group"]
    assert groups.to_dict() == {
        "sel_clean": "selection",
        "sel_blur": "selection",
        "sel_8bit": "other",
        "ap_standard": "held-out DRR",
        "ap_8bit": "held-out DRR",
        "real1": "real",
    }


def test_an_image_chosen_on_is_never_held_out():
    per_roi, manifests = _study_fixture()
    table = label_groups(per_roi, manifests, select_split="test", select_conditions=["standard"], report_split="test")
    groups = table.drop_duplicates("image_id").set_index("image_id")["group"]
    assert groups["ap_standard"] == "selection" and groups["ap_8bit"] == "held-out DRR" and groups["real1"] == "real"


def test_recommendation_uses_the_selection_images_only():
    per_roi, manifests = _study_fixture()
    table = label_groups(
        per_roi, manifests, select_split="val", select_conditions=["standard", "blur"], report_split="test"
    )
    summary = summarise(table, ["study-tuned-T1", "study-steady-T1"], ["original", "clahe"]).set_index("method")
    assert summary.loc["study-tuned-T1", "sel_score"] == pytest.approx(1.3)
    assert summary.loc["study-steady-T1", "drr_cnr_ratio"] == pytest.approx(1.2)
    assert summary.loc["study-steady-T1", "real_wins_vs_original"] == 1  # PIQE only
    assert summary.loc["clahe", "real_wins_vs_original"] == 1  # entropy only
    assert recommend(summary.reset_index()) == "study-tuned-T1"  # not the one that looks best on held-out data


def test_single_selection_applies_the_do_no_harm_rule(tmp_path):
    per_roi, manifests = _study_fixture()
    # tuned scores best on the selection images but loses Dice there; steady keeps it (hand values)
    per_roi["seg_dice"] = per_roi["method"].map(
        {"original": 0.50, "clahe": 0.55, "study-tuned-T1": 0.45, "study-steady-T1": 0.50}
    )
    entries = ["study-tuned-T1", "study-steady-T1"]
    table = label_groups(
        per_roi, manifests, select_split="val", select_conditions=["standard", "blur"], report_split="test"
    )
    summary = summarise(table, entries, ["original", "clahe"])
    assert recommend(summary) == "study-tuned-T1"
    refused = refused_on_selection(table, entries, ["seg_dice"])
    assert refused == {"study-tuned-T1": ["seg_dice"]}  # equal to the original is no harm
    assert recommend(summary, refused) == "study-steady-T1"
    assert refused_on_selection(table, entries, ["seg_dice"], tolerance=0.2) == {}  # 0.45 is within 20 % of 0.50
    assert refused_on_selection(table, entries, ["piqe"]) == {}  # any measured measure, not only the summary's
    per_roi.loc[per_roi["method"].eq("study-steady-T1"), "seg_dice"] = 0.49
    chosen = write_study(
        StudyRun(per_roi, manifests, entries=entries),
        StudySettings(
            select_split="val",
            select_conditions=("standard", "blur"),
            references=("original", "clahe"),
            do_no_harm=tuple(["seg_dice"]),
        ),
        tmp_path,
    )
    assert chosen == "none"
    conclusion = (tmp_path / "conclusion.md").read_text()
    assert "nothing is recommended" in conclusion and "study-steady-T1: seg_dice" in conclusion
    assert "Chosen on the selection DRRs" not in conclusion
    assert not pd.read_csv(tmp_path / "summary.csv")["recommended"].any()
    with pytest.raises(InvalidValueError, match="original has no value"):
        refused_on_selection(table.assign(seg_dice=np.nan), entries, ["seg_dice"])
    with pytest.raises(InvalidValueError, match="not in per_roi.csv"):
        refused_on_selection(table, entries, ["seg_hd95"])


def test_single_selection_with_the_rule_needs_a_score_above_the_originals():
    per_roi, manifests = _study_fixture()
    table = label_groups(
        per_roi, manifests, select_split="val", select_conditions=["standard", "blur"], report_split="test"
    )
    summary = summarise(table, ["study-tuned-T1", "study-steady-T1"], ["original", "clahe"])
    summary.loc[summary["role"].eq("variant"), "sel_score"] = [0.9, 0.8]  # both below the original's 1
    assert recommend(summary) == "study-tuned-T1"  # without the rule: the best score, as before
    assert recommend(summary, refused={}) is None


def test_study_outputs_and_a_plain_conclusion(tmp_path):
    per_roi, manifests = _study_fixture()
    chosen = write_study(
        StudyRun(
            per_roi,
            manifests,
            entries=["study-tuned-T1", "study-steady-T1"],
            entry_settings={"study-tuned-T1": {"output_head": "anchored"}},
        ),
        StudySettings(select_split="val", select_conditions=("standard", "blur"), references=("original", "clahe")),
        tmp_path,
    )
    assert chosen == "study-tuned-T1"
    conclusion = (tmp_path / "conclusion.md").read_text()
    assert "**study-tuned-T1**" in conclusion and "does not beat clahe" in conclusion  # 0.9 < 1.1 on held-out DRRs
    assert "Variants above CLAHE on held-out vertebral CNR: study-steady-T1" in conclusion
    assert (tmp_path / "variants" / "study-steady-T1.md").is_file()
    assert not (tmp_path / "panels" / "study-tuned-T1.png").exists()  # no enhanced images given, no panel
    assert "<table" in (tmp_path / "conclusion.html").read_text()
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary.loc[summary["recommended"], "method"].tolist() == ["study-tuned-T1"]


def test_study_tables_name_the_lpc_si_sigma_onf_of_their_rows(tmp_path):
    per_roi, manifests = _study_fixture(sigma_onf=0.33)
    write_study(
        StudyRun(per_roi, manifests, entries=["study-tuned-T1", "study-steady-T1"]),
        StudySettings(select_split="val", select_conditions=("standard", "blur"), references=("original", "clahe")),
        tmp_path,
    )
    note = "LPC-SI computed with log-Gabor σ_onf = 0.33 "
    for name in ("summary.md", "conclusion.md", "variants/study-tuned-T1.md"):
        assert note in (tmp_path / name).read_text(), name
    assert set(pd.read_csv(tmp_path / "summary.csv")["lpc_sigma_onf"]) == {0.33}
    per_roi.loc[per_roi["method"] == "clahe", "params"] = json.dumps({"lpc_sigma_onf": 0.75})
    write_study(
        StudyRun(per_roi, manifests, entries=["study-tuned-T1"]),
        StudySettings(select_split="val", select_conditions=("standard", "blur"), references=("original", "clahe")),
        tmp_path,
    )
    assert "different σ_onf (0.33, 0.75), not comparable" in (tmp_path / "summary.md").read_text()


def test_variant_keys_are_validated_as_train_keys(tmp_path):
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["xvertnet"]["xvertnet"]["output_head"] = "sideways"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"xvertnet\.xvertnet\.output_head"):
        load_config(tmp_path / "bad.yaml", SCHEMA)
    config["xvertnet"]["xvertnet"] = {"dropout": 0.1}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"xvertnet\.xvertnet\.dropout.*unknown key"):
        load_config(tmp_path / "bad.yaml", SCHEMA)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["study"]["variants"] = {"odd": {"internal": "yes"}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"study\.variants\.odd\.internal"):
        load_config(tmp_path / "bad.yaml", SCHEMA)


#: The study fixture's images by patient: p1 gives the selection images, p2 the report DRRs.
SEPARATE_PATIENTS = {
    "sel_clean": "p1",
    "sel_blur": "p1",
    "sel_8bit": "p1",
    "ap_standard": "p2",
    "ap_8bit": "p2",
    "real1": "",
}


def _with_patients(per_roi, manifests, patients):
    manifest = manifests["demo"].assign(patient=manifests["demo"]["image_id"].map(patients))
    return per_roi, {"demo": manifest}


def test_selection_never_sees_a_report_patient():
    per_roi, manifests = _study_fixture()
    separate = SEPARATE_PATIENTS
    table = label_groups(
        *_with_patients(per_roi, manifests, separate),
        select_split="val",
        select_conditions=["standard", "blur"],
        report_split="test",
    )
    assert set(table.loc[table["group"] == "selection", "patient"]) == {"p1"}
    assert set(table.loc[table["group"] == "held-out DRR", "patient"]) == {"p2"}
    shared = {**separate, "ap_standard": "p1"}
    with pytest.raises(InvalidValueError, match=r"\['p1'\] are both selection and report patients"):
        label_groups(
            *_with_patients(per_roi, manifests, shared),
            select_split="val",
            select_conditions=["standard", "blur"],
            report_split="test",
        )
    allowed = label_groups(
        *_with_patients(per_roi, manifests, shared),
        select_split="val",
        select_conditions=["standard", "blur"],
        report_split="test",
        patient_independent=False,
    )
    assert allowed.attrs["shared_patients"] == ["p1"]


def test_the_study_run_names_disjoint_training_selection_and_report_patients(tmp_path):
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    overlay = yaml.safe_load((REPO / "configs/study.yaml").read_text())
    merged = {
        **config,
        **{key: value for key, value in overlay.items() if key not in ("demo", "study")},
        "demo": {**config["demo"], **overlay["demo"]},
        "study": {**config["study"], **overlay["study"]},
    }
    (tmp_path / "merged.yaml").write_text(yaml.safe_dump(merged))
    validated = load_config(tmp_path / "merged.yaml", SCHEMA)
    study = validated["study"]
    splits = {}
    for patient in validated["demo"]["patients"]:
        views = {view["name"]: view["split"] for view in validated["demo"]["views"]}
        patient_splits = {patient["split"]} if patient["split"] else {views[name] for name in patient["views"]}
        for split in patient_splits:
            splits.setdefault(split, set()).add(patient["name"])
    report, train = splits[study["report_split"]], splits["train"]
    assert len(report) >= 2 and train and not train & report
    # the fracture observer's held-out patients (the choice of `snakemake study`) neither train nor stop early
    observed = set(study["observer"]["patients"])
    assert len(observed) >= 2 and not observed & (train | splits.get("val", set()))
    assert len(study["seeds"]) >= 3
    assert splits.get("val", set()) <= train  # early stopping sees training patients only
    assert study["nested"] and study["do_no_harm"]  # choosing happens among report patients, each held out in turn
    assert (
        validated["run"]
        and validated["demo"]["include_real"]
        and validated["demo"]["real_split"] == study["report_split"]
    )


def test_selection_score_hand_values():
    original = pd.Series({"displayed_contrast": 0.02, "seg_dice": 0.5})
    row = pd.Series({"cnr_ratio": 4.0, "edge_ratio": 1.0, "displayed_contrast": 0.04, "seg_dice": 0.5})
    assert selection_score(row, original) == pytest.approx(2.0)  # sqrt(4 * 1)
    assert selection_score(row, original, ("cnr_ratio", "displayed_contrast")) == pytest.approx(np.sqrt(8.0))
    assert selection_score(
        row, original, ("cnr_ratio", "edge_ratio", "displayed_contrast", "seg_dice")
    ) == pytest.approx(8**0.25)
    assert selection_score(row.replace(0.04, -0.01), original, ("cnr_ratio", "displayed_contrast")) == 0.0
    assert np.isnan(selection_score(row, None, ("displayed_contrast",)))


def test_the_goal_table_and_the_panel_images():
    per_roi, manifests = _study_fixture()
    patients = SEPARATE_PATIENTS
    per_roi, manifests = _with_patients(per_roi, manifests, patients)
    manifests["demo"].loc[manifests["demo"]["image_id"] == "ap_8bit", "condition"] = "low_dose"
    table = label_groups(
        per_roi, manifests, select_split="val", select_conditions=["standard", "blur"], report_split="test"
    )
    assert panel_image_ids(table) == ["ap_standard", "ap_8bit", "real1"]
    goal = goal_markdown(table, "study-steady-T1")
    line = next(line for line in goal.splitlines() if line.startswith("| cnr_ratio"))
    assert "| 1.2000 | 1.1000 | study-steady-T1 |" in line and "(n = 4)" in line and "1 of 1" in line


def _nested_fixture():
    """Three report patients; entry 'bold' scores higher but lowers the displayed CNR on p1, 'mild' harms nothing."""
    rows = []
    values = {  # (method, patient): (cnr_ratio, edge_ratio, displayed_cnr)
        **{("original", p): (1.0, 1.0, 10.0) for p in ("p1", "p2", "p3")},
        **{("clahe", p): (1.0, 4.0, 10.0) for p in ("p1", "p2", "p3")},
        ("bold", "p1"): (4.0, 4.0, 5.0),
        ("bold", "p2"): (4.0, 4.0, 12.0),
        ("bold", "p3"): (4.0, 4.0, 12.0),
        ("mild", "p1"): (1.0, 4.0, 10.0),
        ("mild", "p2"): (1.0, 4.0, 11.0),
        ("mild", "p3"): (1.0, 9.0, 10.0),
    }
    for (method, patient), (cnr, edge, displayed) in values.items():
        for roi in ("upper", "lower"):
            rows.append(
                {
                    "method": method,
                    "patient": patient,
                    "group": "held-out DRR",
                    "dataset": "demo",
                    "image_id": f"{patient}_ap",
                    "roi": roi,
                    "cnr_ratio": cnr,
                    "edge_ratio": edge,
                    "displayed_cnr": displayed,
                }
            )
    rows.append(
        {
            "method": "bold",
            "patient": "",
            "group": "real",
            "dataset": "demo",
            "image_id": "real1",
            "roi": "upper",
            "cnr_ratio": np.nan,
            "edge_ratio": np.nan,
            "displayed_cnr": np.nan,
        }
    )
    return pd.DataFrame(rows)


def test_choosing_on_patients_refuses_an_entry_that_harms_any_of_them():
    table = _nested_fixture()
    chosen, ranking = choose_on_patients(table, ["bold", "mild"], ["p2", "p3"], do_no_harm=["displayed_cnr"])
    assert chosen == "bold"
    assert ranking.set_index("entry").loc["bold", "score"] == pytest.approx(4.0)  # sqrt(4 * 4) on both patients
    assert ranking.set_index("entry").loc["mild", "score"] == pytest.approx(np.sqrt(2.0 * 3.0))  # patients 2 and 3
    chosen, ranking = choose_on_patients(table, ["bold", "mild"], ["p1", "p2"], do_no_harm=["displayed_cnr"])
    assert chosen == "mild" and ranking.set_index("entry").loc["bold", "harmed"] == "displayed_cnr (p1)"
    # a tolerance of 50 % lets 5 against 10 pass; without the rule the higher score wins
    assert (
        choose_on_patients(table, ["bold", "mild"], ["p1", "p2"], do_no_harm=["displayed_cnr"], tolerance=0.5)[0]
        == "bold"
    )
    assert choose_on_patients(table, ["bold", "mild"], ["p1", "p2"])[0] == "bold"
    assert choose_on_patients(table, ["bold"], ["p1"], do_no_harm=["displayed_cnr"])[0] is None


def test_nested_selection_holds_out_each_patient_and_reports_what_it_chose_there(tmp_path):
    table = _nested_fixture()
    folds, with_nested, final, _ = nested_selection(table, ["bold", "mild"], do_no_harm=["displayed_cnr"])
    assert folds.set_index("held_out")["chosen"].to_dict() == {"p1": "bold", "p2": "mild", "p3": "mild"}
    assert final == "mild"  # chosen on all three patients, bold harms p1
    nested = with_nested[with_nested["method"] == NESTED].set_index("patient")
    assert nested.loc["p1", "cnr_ratio"].tolist() == [4.0, 4.0]  # bold's rows on p1, where it was not chosen on p1
    assert nested.loc["p3", "edge_ratio"].tolist() == [9.0, 9.0]
    assert len(with_nested) == len(table) + 6
    text = nested_markdown(
        folds, with_nested, final, _, score=("cnr_ratio", "edge_ratio"), do_no_harm=["displayed_cnr"], tolerance=0.0
    )
    assert "| p1 | p2, p3 | bold |" in text and "**mild**" in text and "nested-selected against clahe" in text
    nothing, _, final, _ = nested_selection(table[table["method"] != "mild"], ["bold"], do_no_harm=["displayed_cnr"])
    assert final is None and nothing.set_index("held_out").loc["p2", "chosen"] == "none (original kept)"
    with pytest.raises(InvalidValueError, match="at least two report patients"):
        nested_selection(table[table["patient"].isin(["p1", ""])], ["bold"])
    numbered = table.assign(
        patient=table["patient"].map({"p1": 1, "p2": 2, "p3": 3, "": np.nan})
    )  # ids read as numbers
    folds, _, final, _ = nested_selection(numbered, ["bold", "mild"], do_no_harm=["displayed_cnr"])
    assert final == "mild" and folds["chosen"].tolist() == ["bold", "mild", "mild"]


def test_an_entry_no_better_than_the_original_is_not_chosen():
    table = _nested_fixture()
    worse = table[table["method"] == "original"].assign(method="worse", edge_ratio=0.8)
    chosen, ranking = choose_on_patients(pd.concat([table, worse]), ["worse"], ["p1", "p2"])
    assert chosen is None and ranking.iloc[0]["score"] == pytest.approx(np.sqrt(0.8))
    with pytest.raises(InvalidValueError, match=r"\['seg_dice'\]"):
        choose_on_patients(table, ["mild"], ["p1", "p2"], do_no_harm=["seg_dice"])
