"""Config validation: defaults filled in, the offending key named."""

from __future__ import annotations

import copy

import pytest
import yaml
from repo_paths import REPO, SCHEMA

from xvertnet.config import load_config, validate_config
from xvertnet.errors import ConfigError


def test_default_config_is_valid_and_complete():
    config = load_config(REPO / "config.yaml", SCHEMA)
    assert config["roi"]["canonical_height"] == 512
    assert config["ingest"]["shard_size"] == 256  # filled from the schema's default
    assert config["datasets"][0]["manifest"] == "demo"


def test_empty_config_gets_every_default():
    config = validate_config({}, SCHEMA)
    assert set(config) == set(yaml.safe_load(SCHEMA.read_text())["properties"])
    assert config["train"]["iterations"] == 2 and config["prep"]["lambda"] == 0.8
    assert config["demo"]["views"][0]["name"] == "ap"


def test_every_schema_property_has_description_and_default():
    schema = yaml.safe_load(SCHEMA.read_text())

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            key = f"{path}.{name}" if path else name
            assert "description" in sub, f"{key} has no description"
            assert "type" in sub, f"{key} has no type"
            required = node.get("required", [])
            assert "default" in sub or name in required or path.endswith("views") or path == "datasets", (
                f"{key} has no default"
            )
            walk(sub, key)
            if "items" in sub:
                walk(sub["items"], key)

    walk(schema, "")


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda c: c["roi"].update(canonical_height="abc"), "roi.canonical_height"),
        (lambda c: c["roi"].update(train_size=[256]), "roi.train_size"),
        (lambda c: c["ingest"].update(colour="yes"), "ingest.colour"),
        (lambda c: c.update(bogus=1), "bogus"),
        (lambda c: c["demo"]["views"][0].update(split="holdout"), "demo.views[0].split"),
        (lambda c: c["roi"].update(upper_fraction=0.9), "roi.upper_fraction"),
        (lambda c: c["roi"].update(train_size=[1024, 256]), "roi.train_size"),
        (lambda c: c["datasets"].append({"name": "demo"}), "datasets"),
    ],
)
def test_invalid_config_names_the_key(change, key):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config = validate_config(copy.deepcopy(config), SCHEMA)
    change(config)
    with pytest.raises(ConfigError) as caught:
        validate_config(config, SCHEMA)
    assert caught.value.key == key
    assert f"config key '{key}'" in str(caught.value)


def test_the_catalogue_planning_reads_equals_the_method_registry():
    """Planning reads method traits from a catalogue that does not import torch; it must say what the classes say."""
    from xvertnet.method_catalogue import CATALOGUE, MethodTraits
    from xvertnet.methods import REGISTRY

    assert CATALOGUE == {
        name: MethodTraits(cls.trainable, cls.uses_training_crops, cls.whole_images) for name, cls in REGISTRY.items()
    }
