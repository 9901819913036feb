"""The plan: which model sets train, which entries share them, what each job reads, and clear errors."""

from __future__ import annotations

import pytest
from repo_paths import REPO, SCHEMA

from xvertnet.config import load_config, validate_config
from xvertnet.errors import ConfigError
from xvertnet.plan import Plan


def _plan(**sections) -> Plan:
    config = {"datasets": [{"name": "a", "manifest": "demo"}, {"name": "b", "manifest": "m.csv", "shard_size": 4}]}
    config.update(sections)
    return Plan(validate_config(config, SCHEMA))


def shards(dataset):
    return {"a": ["shard-00000"], "b": ["shard-00000", "shard-00001"]}[dataset]


def test_default_config_plans_both_xvertnet_rows_and_every_baseline():
    plan = Plan(load_config(REPO / "config.yaml", SCHEMA))
    assert plan.xvertnet_methods == ["xvertnet-paper", "xvertnet"]
    assert plan.methods == [
        "xvertnet-paper",
        "xvertnet",
        "original",
        "clahe",
        "farbman",
        "zerodce",
        "zssr",
        "madmad",
        "lut-mapping",
    ]
    assert plan.entries["xvertnet-paper"]["iterations"] == 2 and plan.entries["xvertnet"]["iterations"] == 1
    assert plan.study_entries == []  # the grid is the study run's (configs/study.yaml)
    assert plan.trained_baselines == ["zerodce", "madmad", "lut-mapping"]


def test_entries_with_equal_training_settings_share_one_model_set():
    plan = _plan(
        xvertnet={"paper": {}, "paper-t1": {"iterations": 1}, "wide": {"base_width": 16}},
        study={"variants": {"paper": {}, "internal": {"internal": True, "iterations": 1}}},
    )
    assert sorted(plan.model_sets) == ["paper", "wide"]  # paper-t1 and study-paper-* reuse paper's iterations
    assert plan.entries["paper-t1"]["model_set"] == "paper" and plan.entries["study-paper-T1"]["model_set"] == "paper"
    assert plan.entries["study-internal-T1"]["model_set"] is None
    assert plan.study_paper_entry() == "study-paper-T2"
    assert "iterations" not in plan.model_set_settings("paper") and plan.model_set_settings("wide")["base_width"] == 16


def test_study_seeds_give_each_variant_a_model_set_per_seed_and_the_observer_stage_its_entries():
    plan = _plan(
        xvertnet={"x": {"output_head": "anchored", "iterations": 1}},
        study={
            "variants": {
                "anchored": {"output_head": "anchored", "iterations": 1},
                "then-clahe": {"output_head": "anchored", "iterations": 1, "then": ["clahe"]},
                "own": {"internal": True, "iterations": 1},
            },
            "seeds": [0, 2],
        },
    )
    assert plan.study_entries == [
        "study-anchored-s0-T1",
        "study-anchored-s2-T1",
        "study-then-clahe-s0-T1",
        "study-then-clahe-s2-T1",
        "study-own-s0-T1",
        "study-own-s2-T1",
    ]
    # seed 0 is the comparison row's own training; the composite shares the plain variant's models, seed by seed
    assert plan.entries["study-anchored-s0-T1"]["model_set"] == "x"
    assert plan.entries["study-then-clahe-s2-T1"]["model_set"] == plan.entries["study-anchored-s2-T1"]["model_set"]
    assert plan.model_set_settings(plan.entries["study-anchored-s2-T1"]["model_set"])["seed"] == 2
    observed = plan.study_observer_entries()
    assert sorted(observed) == sorted(e for e in plan.study_entries if "-own-" not in e)  # internal learning left out
    composite = observed["study-then-clahe-s2-T1"]
    assert composite["method"] == "xvertnet-chain" and composite["settings"]["then"][0]["method"] == "clahe"
    assert (composite["variant"], composite["seed"], composite["iteration"]) == ("then-clahe", 2, 1)


def test_job_inputs_follow_the_layout():
    plan = _plan(xvertnet={"x": {"iterations": 2}})
    assert plan.manifest("a") == "results/a/raw/manifest.csv" and plan.manifest("b") == "m.csv"
    assert plan.shard_settings("b") == {"shard_size": 4} and plan.shard_settings("a") == {"shard_size": 256}
    assert plan.train_inputs("x", 1, shards) == [
        "results/a/prep/shard-00000.h5",
        "results/b/prep/shard-00000.h5",
        "results/b/prep/shard-00001.h5",
    ]
    assert plan.train_inputs("x", 2, shards)[0] == "results/a/refine/x/iter1/shard-00000.h5"
    assert plan.enhance_inputs("x", "b", "shard-00001")["models"] == [
        "results/models/x/iter1/model.json",
        "results/models/x/iter2/model.json",
    ]
    assert plan.enhance_inputs("zerodce", "a", "shard-00000")["models"] == [
        "results/models/baselines/zerodce/model.json"
    ]
    assert plan.enhance_inputs("clahe", "a", "shard-00000") == {"roi": "results/a/roi/shard-00000.h5", "models": []}
    assert plan.baseline_train_inputs("madmad", shards) == []  # trained on synthetic data
    assert len(plan.baseline_train_inputs("zerodce", shards)) == 3


def test_every_method_enhances_through_a_registered_method_with_its_settings():
    plan = _plan(xvertnet={"x": {"iterations": 1}, "own": {"internal": True}}, enhance={"tile": 256})
    kind, settings = plan.enhance_method("x", "a", "shard-00000")
    assert kind == "xvertnet-chain" and settings["models"] == ["results/models/x/iter1"] and settings["tile"] == 256
    kind, settings = plan.enhance_method("own", "a", "shard-00000")
    assert kind == "xvertnet-internal" and settings["prep"] == "results/a/prep/shard-00000.h5"
    assert "internal" not in settings["train"] and settings["iterations"] == 2
    assert plan.enhance_method("clahe", "a", "s") == ("clahe", {"clip_limit": 0.01, "kernel_size": None, "nbins": 256})
    assert plan.enhance_method("preprocessed", "a", "s")[1]["lambda"] == 0.8


def test_bad_configurations_fail_with_the_key():
    with pytest.raises(ConfigError, match="config key 'xvertnet'.*clahe"):
        _plan(xvertnet={"clahe": {}})
    with pytest.raises(ConfigError, match="config key 'study.references'.*sharpen"):
        _plan(study={"references": ["original", "sharpen"]})


def test_an_enhance_only_data_set_feeds_no_training_and_is_enhanced_in_every_split():
    plan = _plan(datasets=[{"name": "a", "manifest": "demo"}, {"name": "b", "manifest": "m.csv", "enhance_only": True}])
    assert plan.training_datasets == ["a"]
    assert all(
        "/b/" not in path
        for path in plan.train_inputs("xvertnet", 1, shards) + plan.baseline_train_inputs("zerodce", shards)
    )
    assert plan.enhance_splits("b") == ["train", "val", "test"] and plan.measure_splits("a") == ["val", "test"]
    # the segmentation task trains on the training split, which is enhanced but not measured
    assert plan.enhance_splits("a") == ["val", "test", "train"]
    assert plan.segmentation_csvs("metrics") == [f"results/segmentation/{method}.csv" for method in plan.methods]
    assert plan.segmentation_csvs("study") == [f"results/segmentation/{method}.csv" for method in plan.study_methods]
    without = _plan(segmentation_task={"enabled": False})
    assert without.enhance_splits("a") == ["val", "test"] and without.segmentation_csvs("metrics") == []


def test_existing_models_replace_training(tmp_path):
    for t in (1, 2):
        (tmp_path / "set" / f"iter{t}").mkdir(parents=True)
        (tmp_path / "set" / f"iter{t}" / "model.json").write_text("{}")
    plan = _plan(
        datasets=[{"name": "b", "manifest": "m.csv", "enhance_only": True}],
        xvertnet={"mine": {"models": str(tmp_path / "set"), "iterations": 2}},
        baselines={"methods": ["clahe", "madmad"]},
    )
    assert plan.model_sets == {} and plan.entry_model_dirs("mine") == [
        str(tmp_path / "set" / "iter1"),
        str(tmp_path / "set" / "iter2"),
    ]
    kind, settings = plan.enhance_method("mine", "b", "shard-00000")
    assert kind == "xvertnet-chain" and settings["models"] == plan.entry_model_dirs("mine")
    with pytest.raises(ConfigError, match="xvertnet.mine.models"):
        _plan(xvertnet={"mine": {"models": str(tmp_path / "nothing")}})
    with pytest.raises(ConfigError, match="every data set is enhance_only"):
        _plan(
            datasets=[{"name": "b", "manifest": "m.csv", "enhance_only": True}]
        )  # the default entries would need training


def test_the_shipped_model_set_and_a_named_run():
    from xvertnet.config import SHIPPED_MODELS

    plan = _plan(
        run="mine",
        datasets=[{"name": "a", "manifest": "a.csv", "enhance_only": True}],
        xvertnet={"mine-xvertnet": {"models": "shipped"}},
        baselines={"methods": ["clahe"]},
    )
    assert plan.entry_model_dirs("mine-xvertnet") == [str(SHIPPED_MODELS / "iter1")] and not plan.model_sets
    assert plan.enhanced("a", "clahe", "shard-00000") == "results/runs/mine/enhanced/clahe/a/shard-00000.h5"
    assert "results/runs/mine/tables/comparison.md" in plan.final_outputs()
    assert plan.stage_shard("a", "roi", "shard-00000") == "results/a/roi/shard-00000.h5"  # data set stages are shared
    with pytest.raises(ConfigError, match="datasets"):
        _plan(datasets=[{"name": "runs", "manifest": "a.csv"}])


def test_null_entries_are_dropped_and_only_the_comparison_needs_training_data():
    plan = _plan(
        datasets=[{"name": "a", "manifest": "a.csv", "enhance_only": True}],
        xvertnet={"xvertnet-paper": None, "mine": {"models": "shipped"}},
        baselines={"methods": ["clahe"]},
        study={"variants": {"paper": {}, "other": None}},
    )
    assert plan.xvertnet_methods == ["mine"] and plan.study_entries == [
        "study-paper-T1",
        "study-paper-T2",
    ]  # built when asked for
    with pytest.raises(ConfigError, match="xvertnet.baselines"):
        _plan(xvertnet={"baselines": {}})
