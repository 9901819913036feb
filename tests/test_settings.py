"""Each stage's settings: said once (schema defaults = package defaults), built the same way from a config section."""

from __future__ import annotations

import json

import pytest
import yaml
from repo_paths import SCHEMA

from xvertnet.demo.demo_data import DemoSettings
from xvertnet.errors import ConfigError
from xvertnet.evaluation.leave_one_patient_out import EvaluationSettings
from xvertnet.evaluation.segmentation_task import SegmentationTaskSettings
from xvertnet.evaluation.stats import TableSettings
from xvertnet.evaluation.study_selection import StudySettings
from xvertnet.io.datasets import ShardSettings
from xvertnet.io.readers import ReadOptions
from xvertnet.methods import REGISTRY
from xvertnet.metrics import MetricParams
from xvertnet.model.inference import EnhanceSettings
from xvertnet.model.training import TrainConfig
from xvertnet.preprocessing.preprocess import PrepParams
from xvertnet.preprocessing.spine_location import RoiSettings
from xvertnet.settings import _plain, load_settings

SETTINGS = (
    ReadOptions,
    ShardSettings,
    RoiSettings,
    PrepParams,
    TrainConfig,
    EnhanceSettings,
    MetricParams,
    TableSettings,
    StudySettings,
    DemoSettings,
    EvaluationSettings,
    SegmentationTaskSettings,
)
SCHEMA_SECTIONS = yaml.safe_load(SCHEMA.read_text())["properties"]


def _value(settings, path: str):
    for part in path.split("."):
        settings = getattr(settings, part)
    return _plain(settings)


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda cls: cls.__name__)
def test_every_schema_default_equals_the_package_default(cls):
    properties = SCHEMA_SECTIONS[cls.SECTION]["properties"]
    defaults = cls()
    for key, field in cls.config_keys().items():
        if key not in properties:
            continue  # a package-only parameter (recorded, not configurable)
        expected = properties[key]["default"]
        assert _value(defaults, field) == expected, (
            f"{cls.SECTION}.{key}: package {_value(defaults, field)!r}, schema {expected!r}"
        )


@pytest.mark.parametrize("section", sorted({cls.SECTION for cls in SETTINGS}))
def test_every_key_of_a_section_is_read_by_exactly_one_settings_class(section):
    readers = {}
    for cls in SETTINGS:
        if cls.SECTION == section:
            for key in cls.config_keys():
                readers.setdefault(key, []).append(cls.__name__)
    # planning keys (xvertnet.plan) and the study's observer part (its own class, below)
    keys = set(SCHEMA_SECTIONS[section]["properties"]) - {
        "variants",
        "each_iteration",
        "iterations",
        "internal",
        "seeds",
        "observer",
    }
    assert {key: names for key, names in readers.items() if key in keys and len(names) != 1} == {}
    assert sorted(keys - set(readers)) == []


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda cls: cls.__name__)
def test_every_class_accepts_its_whole_section_as_the_workflow_passes_it(cls):
    from xvertnet.config import validate_config

    config = validate_config({}, SCHEMA)  # every section with the schema's defaults
    assert cls.from_config(config[cls.SECTION]) == cls()


def test_planning_keys_are_the_only_keys_no_settings_class_reads():
    assert set(TrainConfig.ELSEWHERE) == {"iterations", "internal"}
    assert set(StudySettings.ELSEWHERE) == {"variants", "each_iteration", "seeds", "observer"}


@pytest.mark.parametrize(
    "name", sorted(name for name in REGISTRY if name in SCHEMA_SECTIONS["baselines"]["properties"])
)
def test_every_baseline_default_equals_its_schema_default(name):
    properties = SCHEMA_SECTIONS["baselines"]["properties"][name]["properties"]
    assert set(properties) <= set(REGISTRY[name].defaults), (
        name
    )  # the rest are package-only (e.g. Zero-DCE loss weights)
    for key, schema in properties.items():
        assert REGISTRY[name].defaults[key] == schema["default"], f"baselines.{name}.{key}"


def test_from_config_round_trips_and_refuses_unknown_keys():
    section = {"canonical_height": 1024, "train_size": [512, 512], "eval_size": [512, 290], "qc_max_per_shard": 3}
    settings = RoiSettings.from_config(section)
    assert settings.train_size == (512, 512) and settings.qc_max_per_shard == 3
    assert RoiSettings.from_config(settings.record()) == settings
    prep = PrepParams.from_config({"lambda": 1.5, "solver": "amg", "figures_per_shard": 2})
    assert prep.wls.lam == 1.5 and prep.wls.solver == "amg" and prep.figures_per_shard == 2
    assert PrepParams.from_config(prep.record()).wls == prep.wls  # what shards record rebuilds the same parameters
    train = TrainConfig.from_config({"base_width": 4, "depth": 2, "inputs": ["X", "Xp"], "iterations": 3})
    assert train.model.base_width == 4 and train.model.in_channels == 2
    assert TrainConfig.from_config(train.record()) == train
    with pytest.raises(ConfigError, match="config key 'roi.canonical_heigth'"):
        RoiSettings.from_config({"canonical_heigth": 512})
    with pytest.raises(ConfigError, match="config key 'prep.lamda'"):
        PrepParams.from_config({"lamda": 1.0})
    with pytest.raises(ConfigError, match="config key 'roi'"):
        RoiSettings.from_config({"upper_fraction": 0.9, "lower_fraction": 0.5})


def test_settings_option_takes_json_or_a_file(tmp_path):
    assert load_settings('{"a": 1}') == {"a": 1} and load_settings(None) == {}
    (tmp_path / "roi.yaml").write_text("canonical_height: 256\n")
    assert load_settings(f"@{tmp_path / 'roi.yaml'}") == {"canonical_height": 256}
    for bad, reason in (
        ("[1, 2]", "expected a JSON object"),
        ("{oops", "not a JSON object"),
        ("@/nonexistent.yaml", "cannot read"),
    ):
        with pytest.raises(ConfigError, match=reason):
            load_settings(bad)
    assert json.loads(json.dumps(DemoSettings().record()))["views"][0]["name"] == "ap"


def test_the_study_observer_defaults_are_the_schema_defaults():
    from xvertnet.evaluation.observer_study import ObserverStudySettings

    properties = SCHEMA_SECTIONS["study"]["properties"]["observer"]["properties"]
    assert sorted(properties) == sorted(ObserverStudySettings.config_keys())
    assert {key: properties[key]["default"] for key in properties} == ObserverStudySettings().record()
