"""Manifests and sharding."""

from __future__ import annotations

import pandas as pd
import pytest

from xvertnet.io.datasets import ManifestError, read_manifest, split_into_shards, write_manifest


def _manifest(tmp_path, count):
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for index in range(count):
        (images / f"img{index:03d}.png").write_bytes(b"x")
        rows.append(
            {
                "image_id": f"img{index:03d}",
                "path": f"images/img{index:03d}.png",
                "source": "t",
                "bit_depth": 8,
                "split": "train",
            }
        )
    path = tmp_path / "manifest.csv"
    write_manifest(pd.DataFrame(rows), path)
    return path


def test_shards_keep_order_and_resolve_paths(tmp_path):
    manifest = _manifest(tmp_path, 37)
    shards = split_into_shards(manifest, tmp_path / "out" / "shards", shard_size=16)
    assert [p.name for p in shards] == ["shard-00000.csv", "shard-00001.csv", "shard-00002.csv"]
    parts = [read_manifest(p) for p in shards]
    assert [len(p) for p in parts] == [16, 16, 5]
    ids = [i for part in parts for i in part["image_id"]]
    assert ids == [f"img{i:03d}" for i in range(37)]
    assert all(pd.io.common.file_exists(path) for part in parts for path in part["resolved_path"])


def test_resharding_removes_stale_shards(tmp_path):
    manifest = _manifest(tmp_path, 20)
    folder = tmp_path / "shards"
    split_into_shards(manifest, folder, shard_size=5)
    split_into_shards(manifest, folder, shard_size=10)
    assert sorted(p.name for p in folder.glob("*.csv")) == ["shard-00000.csv", "shard-00001.csv"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.drop(columns=["split"]), "missing columns"),
        (lambda m: pd.concat([m, m.iloc[:1]]), "duplicate image ids"),
        (lambda m: m.assign(split="holdout"), "unknown splits"),
        (lambda m: m.assign(image_id=["../etc"] + list(m["image_id"][1:])), "image ids must match"),
    ],
)
def test_bad_manifests_are_named(tmp_path, change, message):
    path = _manifest(tmp_path, 3)
    write_manifest(change(pd.read_csv(path)), path)
    with pytest.raises(ManifestError, match=message) as caught:
        read_manifest(path)
    assert str(path) in str(caught.value)
