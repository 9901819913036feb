"""The detectability study's analysis: per method, lesion and region, paired against the references, saved and rerun."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic_data import observer_study

from xvertnet.errors import ConfigError, InvalidValueError
from xvertnet.evaluation import detectability as det


def synthetic_study(seed=0, size=32):
    """Cases of two patients (levels alternating behind and above the heart) and three methods' displayed patches:
    'original' shows the lesion faintly, 'clahe-0.01' a little more, 'sharp' plainly."""
    return observer_study({"original": 1.0, "clahe-0.01": 1.5, "sharp": 3.0}, size=size, seed=seed)


def test_analysis_ranks_methods_by_what_their_displays_show_and_pairs_them():
    patches, cases = synthetic_study()
    settings = det.DetectabilitySettings.from_config(
        {"observer": {"patch_px": 32, "bootstrap": 200}, "realisations": 8}
    )
    table = det.analyse(patches, cases, settings)
    assert set(table["region"]) == {"all", "behind_heart", "above_heart"}
    cho = table[(table["observer"] == "cho") & (table["region"] == "all") & (table["grade"] == 2)].set_index(
        ["kind", "method"]
    )
    for kind in ("wedge", "biconcave"):
        assert cho.loc[(kind, "sharp"), "auc"] > cho.loc[(kind, "clahe-0.01"), "auc"] > 0.5
        assert cho.loc[(kind, "sharp"), "vs_original_low"] > 0  # the paired difference is significant
        assert (
            cho.loc[(kind, "sharp"), "auc_low"]
            <= cho.loc[(kind, "sharp"), "auc"]
            <= cho.loc[(kind, "sharp"), "auc_high"]
        )
    sharp = table[(table["method"] == "sharp") & (table["observer"] == "cho") & (table["region"] == "all")]
    assert (sharp[sharp["grade"] == 2]["auc"].to_numpy() >= sharp[sharp["grade"] == 1]["auc"].to_numpy() - 0.02).all()
    text = det.detectability_markdown(
        table,
        dataclasses_replace(settings, methods=("original", "clahe-0.01", "sharp")),
        {"cases": {"present": 4, "absent": 1}, "dose": {}, "timing_s": {}},
    )
    assert "**sharp**" in text and "higher in" in text


def dataclasses_replace(settings, **changes):
    import dataclasses

    return dataclasses.replace(settings, **changes)


def test_saved_patches_give_the_same_table_again(tmp_path):
    patches, cases = synthetic_study(size=24)
    patches["clahe-0.03"] = patches.pop("sharp")
    settings = det.DetectabilitySettings.from_config(
        {
            "observer": {"patch_px": 24, "bootstrap": 50},
            "realisations": 8,
            "methods": ["original", "clahe-0.01", "clahe-0.03"],
        }
    )
    patches = {
        name: np.rint(values * 255) / np.float32(255) for name, values in patches.items()
    }  # as displayed: 8 bits
    det.save_patches(tmp_path, patches, cases)
    (tmp_path / "validation.json").write_text('{"cases": {"present": 1, "absent": 1}, "dose": {}, "timing_s": {}}')
    again = det.reanalyse(tmp_path, settings)
    pd.testing.assert_frame_equal(again, det.analyse(patches, cases, settings), check_exact=False, rtol=1e-6)
    assert (tmp_path / "reading" / "index.html").is_file() and (tmp_path / "clahe_curve.png").is_file()
    # CLAHE at two clip limits and two patients: the clip limit chosen on the other patient, for each
    choice = pd.read_csv(tmp_path / "clahe_choice.csv")
    assert choice["held_out"].tolist() == ["p1", "p2"] and set(choice["chosen"]) <= {"clahe-0.01", "clahe-0.03"}
    assert (
        "## A clip limit chosen on other patients (cho, behind the heart)"
        in (tmp_path / "detectability.md").read_text()
    )


def test_study_settings_are_checked():
    with pytest.raises(InvalidValueError, match="even"):
        det.DetectabilitySettings(realisations=5)
    with pytest.raises(InvalidValueError, match="fracture type"):
        det.DetectabilitySettings(kinds=("burst",))
    from xvertnet.demo.demo_data import DemoSettings

    with pytest.raises(InvalidValueError, match="unknown view 'lateral' .the demo's views: ap, rotl4"):
        det.study_views(det.DetectabilitySettings(views=("ap", "lateral")), DemoSettings())
    with pytest.raises(InvalidValueError, match="views must be a non-empty list"):
        det.DetectabilitySettings(views=())
    with pytest.raises(InvalidValueError, match="needs training"):
        det.build_method("srcnn")


def test_the_dose_check_table_has_one_row_per_lesion_and_observer_and_a_column_per_dose():
    from xvertnet.reporting.docs_tables import HEADER

    validation = {
        "produced_by": {"commit": "abc1234", "machine": "x86_64, 2 CPU cores", "device": "cpu"},
        "dose": {
            "4.0": {"cho wedge-g1": 0.5, "npwe wedge-g1": 0.45},
            "1.0": {"cho wedge-g1": 0.4, "npwe wedge-g1": 0.35, "cho biconcave-g2": 0.47},
            "0.25": {"cho wedge-g1": 0.26, "npwe wedge-g1": 0.3},
        },
    }
    text = det.validation_markdown(validation)
    assert HEADER.match(text) and "`xvertnet detectability` at commit abc1234" in text
    lines = text.splitlines()
    assert "| lesion | observer | quarter dose | standard dose | four times |" in lines
    assert "| wedge grade 1 | cho | 0.26 | 0.40 | 0.50 |" in lines
    assert "| wedge grade 1 | npwe | 0.30 | 0.35 | 0.45 |" in lines
    assert "| biconcave grade 2 | cho | – | 0.47 | – |" in lines  # a lesion missing at a dose is a dash
    assert lines.index("| wedge grade 1 | cho | 0.26 | 0.40 | 0.50 |") < lines.index(
        "| biconcave grade 2 | cho | – | 0.47 | – |"
    )


LIDC_RECORD = {
    "source": "project images",
    "splits": ["train"],
    "image_ids": ["drr_lidc0001_rotl4_standard"],
    "patients": ["lidc0001"],
    "unmapped_image_ids": [],
}


@pytest.mark.parametrize(
    ("trained_on", "reason"),
    [
        (None, "does not record what the model was trained on"),
        ({}, "does not record what the model was trained on"),
        ({**LIDC_RECORD, "patients": ["lidc0001", "TSCHEST"]}, "the model was trained on TSCHEST, a held-out patient"),
        ({**LIDC_RECORD, "unmapped_image_ids": ["mine_001"]}, "1 training image.s., such as mine_001, have no patient"),
        ({**LIDC_RECORD, "patients": []}, "names no training patient"),
    ],
)
def test_a_learned_baseline_is_refused_unless_its_record_rules_out_every_study_patient(tmp_path, trained_on, reason):
    """A model that saw a study patient, or whose record cannot rule one out, is refused in one line naming it."""
    import json

    from xvertnet.errors import InputFileError
    from xvertnet.methods import get_method

    model_dir = tmp_path / "baselines" / "zerodce"
    crops = [np.random.default_rng(0).random((64, 64)).astype(np.float32) for _ in range(2)]
    get_method("zerodce", {"steps": 1, "batch_size": 2, "width": 4}).fit(crops, model_dir)
    record = json.loads((model_dir / "model.json").read_text())
    if trained_on is not None:
        record["trained_on"] = trained_on
    (model_dir / "model.json").write_text(json.dumps(record))
    with pytest.raises(InputFileError, match=r"zerodce/model.json: " + reason):
        det.build_method("zerodce", baselines=str(tmp_path / "baselines"), held_out=("tschest", "lung1"))


def test_a_learned_baseline_enters_with_the_parameters_it_was_trained_with_and_the_note_says_what_it_saw(tmp_path):
    """The workflow's trained baselines join the study from their folder; missing or unreadable models are refused in
    one line; a model trained on data of its own (Madmad, synthetic) enters without patients."""
    from xvertnet.errors import InputFileError
    from xvertnet.methods import get_method
    from xvertnet.stages.train_baseline import record_training_data

    rng = np.random.default_rng(0)
    crops = [rng.random((64, 64)).astype(np.float32) for _ in range(4)]
    baselines = tmp_path / "baselines"
    with pytest.raises(InputFileError, match=r"madmad/model.json: no trained model of 'madmad'"):
        det.build_method("madmad", baselines=str(baselines), held_out=("tschest",))
    (baselines / "lut-mapping").mkdir(parents=True)
    (baselines / "lut-mapping" / "model.json").write_text("{not json")
    with pytest.raises(InputFileError, match=r"lut-mapping/model.json: not a readable model record"):
        det.build_method("lut-mapping", baselines=str(baselines), held_out=("tschest",))

    params = {"steps": 2, "batch_size": 2, "width": 4, "seed": 3}
    get_method("zerodce", params).fit(crops, baselines / "zerodce")
    record_training_data(baselines / "zerodce", LIDC_RECORD)
    madmad = {"steps": 1, "batch_size": 2, "width": 4, "layers": 2}
    get_method("madmad", madmad).fit([], baselines / "madmad")
    record_training_data(
        baselines / "madmad",
        {"source": "data of its own", "splits": [], "image_ids": [], "patients": [], "unmapped_image_ids": []},
    )
    enhance = det.build_method("zerodce", baselines=str(baselines), held_out=("tschest", "lung1"))
    image = rng.random((48, 40)).astype(np.float32)
    trained = get_method("zerodce", params)
    trained.load(baselines / "zerodce")
    assert np.array_equal(enhance(image), trained.enhance_whole(image)), (
        "loaded with the parameters it was trained with"
    )
    assert det.build_method("madmad", baselines=str(baselines), held_out=("tschest",))(image).shape == image.shape

    settings = det.DetectabilitySettings.from_config(
        {"methods": ["original", "zerodce", "madmad"], "baselines": str(baselines), "patients": ["tschest", "lung1"]}
    )
    validation = {"baselines": det.baseline_records(settings, det.learned_baselines(settings))}
    assert validation["baselines"]["zerodce"]["trained_on"]["patients"] == ["lidc0001"]
    line = det.left_out_line(settings, validation)
    assert "(zerodce trained on lidc0001; madmad trained on data of its own;" in line
    assert "Not run: " in line and "zerodce" not in line.split("Not run: ")[1].split("(")[0]
    # every learned method in the run: nothing learned is listed as not run
    everything = det.DetectabilitySettings(methods=("original", "led", "zerodce"), baselines=str(baselines))
    assert "Not run: lut-mapping, lut-mapping-bone, madmad" in det.left_out_line(everything, validation)
    with pytest.raises(ConfigError, match="patients must be a non-empty list of names, got 'tschest'"):
        det.DetectabilitySettings.from_config({"patients": "tschest"})


def test_every_method_enhances_every_image_whole_and_its_time_is_counted(caplog):
    """One synthetic view (two levels, a lesion each) through the study's acquisition, two methods, two realisations:
    one signal-absent and two signal-present images per realisation, a patch per place, each method's time kept."""
    import logging

    from xvertnet.demo.demo_data import DemoSettings

    y, x = np.mgrid[:128, :96].astype(np.float32)
    line_integral = 2.0 + np.exp(-(((x - 48) / 10) ** 2)).astype(np.float32)  # a bright column: the spine
    blob = lambda row: 0.3 * np.exp(-(((y - row) / 4) ** 2 + ((x - 48) / 6) ** 2)).astype(np.float32)  # noqa: E731
    levels = {
        3: {"centre": (40, 48), "lesion_centre": {"wedge": (40, 48)}, "region": "above_heart", "index": 0},
        4: {"centre": (80, 48), "lesion_centre": {"wedge": (80, 48)}, "region": "behind_heart", "index": 1},
    }
    scene = det.PatientScene("p1", line_integral, levels, {(3, "wedge", 1): blob(40), (4, "wedge", 1): blob(80)}, {})
    settings = det.DetectabilitySettings(
        patients=("p1",), realisations=2, kinds=("wedge",), grades=(1,), stride=2, methods=("original", "clahe-0.01")
    )
    enhancers = {name: det.build_method(name) for name in settings.methods}
    seconds: dict = {}
    with caplog.at_level(logging.INFO, logger="xvertnet.evaluation.detectability"):
        patches, cases = det.collect_patches([scene], settings, DemoSettings(), enhancers, seconds=seconds)
    # per realisation: the absent image read at both levels, and one present image per level set (stride 2)
    assert len(cases) == 2 * (2 + 2) and cases["present"].sum() == 4
    assert set(patches) == {"original", "clahe-0.01"} and patches["original"].shape == (8, 64, 64)
    assert not np.array_equal(patches["original"], patches["clahe-0.01"])
    assert set(seconds) == {"original", "clahe-0.01"} and all(value > 0 for value in seconds.values())
    assert "p1 ap (dose x1): 6 images, enhancement original" in caplog.text
    assert set(cases["view"]) == {"ap"}
