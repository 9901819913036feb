"""publish_model: a trained model is copied up atomically, and never when its record does not match it."""

from __future__ import annotations

import json

import pytest

from xvertnet.errors import XvertnetError
from xvertnet.provenance import sha256_file
from xvertnet.stages.publish_model import publish_model


def test_a_model_is_published_with_its_record_and_a_mismatch_publishes_nothing(tmp_path):
    training = tmp_path / "iter1" / "training"
    training.mkdir(parents=True)
    (training / "model.pt").write_bytes(b"weights")
    (training / "model.json").write_text(json.dumps({"model_sha256": sha256_file(training / "model.pt")}))
    published = publish_model([training / "model.json", training / "model.pt"], tmp_path / "iter1")
    assert [p.name for p in published] == ["model.pt", "model.json"]  # the record last
    assert (tmp_path / "iter1/model.pt").read_bytes() == b"weights"

    (training / "model.pt").write_bytes(b"other weights")
    with pytest.raises(XvertnetError, match="sha256 differs"):
        publish_model([training / "model.pt", training / "model.json"], tmp_path / "iter1")
    assert (tmp_path / "iter1/model.pt").read_bytes() == b"weights"  # the published model is untouched
    (training / "model.json").write_text("{not json")
    with pytest.raises(XvertnetError, match="not a readable model record"):
        publish_model([training / "model.pt", training / "model.json"], tmp_path / "iter1")
