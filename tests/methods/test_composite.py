"""Composites of an XVertNet configuration with untrained methods (`before`, `then`)."""

from __future__ import annotations

import numpy as np
import pytest
from repo_paths import SCHEMA

from xvertnet.config import validate_config
from xvertnet.errors import ConfigError, XvertnetError
from xvertnet.methods import get_method
from xvertnet.methods.composite import compose, split_steps
from xvertnet.plan import Plan


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :80]
    return np.clip(0.3 + 0.2 * np.sin(yy / 9.0) * np.cos(xx / 7.0) + rng.normal(0, 0.02, (96, 80)), 0, 1).astype(
        np.float32
    )


def test_steps_run_in_order_on_rois_and_whole_images():
    image = _image()
    clahe, farbman = get_method("clahe"), get_method("farbman")
    composite = compose(farbman, {"before": [{"method": "clahe", "settings": {}}]})
    np.testing.assert_allclose(composite(image), farbman(clahe(image)), atol=1e-6)
    composite = compose(farbman, {"then": [{"method": "clahe", "settings": {}}]})
    np.testing.assert_allclose(composite(image), clahe(farbman(image)), atol=1e-6)
    np.testing.assert_allclose(
        composite.enhance_whole(image), clahe.enhance_whole(farbman.enhance_whole(image)), atol=1e-6
    )
    assert not np.allclose(farbman(clahe(image)), clahe(farbman(image)), atol=1e-3)  # the order matters
    assert composite.name == "farbman" and composite.describe()["then"] == [{"clahe": clahe.describe()}]
    assert compose(farbman, {}) is farbman


def test_a_trained_method_cannot_be_a_step():
    with pytest.raises(XvertnetError, match="'zerodce' cannot be composed"):
        compose(get_method("clahe"), {"then": [{"method": "zerodce", "settings": {}}]})
    assert split_steps({"tile": 512, "then": [{"method": "clahe"}]}) == ({"tile": 512}, {"then": [{"method": "clahe"}]})


def test_a_composite_entry_shares_the_model_set_and_enhances_with_its_steps():
    config = {
        "xvertnet": {
            "xvertnet": {"output_head": "anchored", "iterations": 1},
            "xvertnet-then-clahe": {"output_head": "anchored", "iterations": 1, "then": ["clahe"]},
            "clahe-then-xvertnet": {"output_head": "anchored", "iterations": 1, "before": ["clahe"]},
        },
        "baselines": {"clahe": {"clip_limit": 0.02}},
    }
    plan = Plan(validate_config(config, SCHEMA))
    assert {plan.entries[name]["model_set"] for name in config["xvertnet"]} == {"xvertnet"}
    kind, settings = plan.enhance_method("xvertnet-then-clahe", "demo", "shard-00000")
    assert kind == "xvertnet-chain" and settings["then"] == [
        {"method": "clahe", "settings": {"clip_limit": 0.02, "kernel_size": None, "nbins": 256}}
    ]
    assert "before" not in settings
    assert plan.enhance_method("clahe-then-xvertnet", "demo", "shard-00000")[1]["before"][0]["method"] == "clahe"
    assert "then" not in plan.enhance_method("xvertnet", "demo", "shard-00000")[1]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"then": ["zerodce"]}, "xvertnet.x.then.*cannot be composed"),
        ({"then": "clahe"}, "xvertnet.x.then.*list of method names"),
        ({"before": ["clahe"], "internal": True}, "xvertnet.x.before.*internal learning"),
    ],
)
def test_bad_steps_are_refused_with_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_config({"xvertnet": {"x": overrides}}, SCHEMA)
