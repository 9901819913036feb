"""The ingest stage: a shard with good and bad images goes on, and says why it rejected each."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from helpers import EXPECTED_REASONS, bad_files
from xvertnet.cli import main
from xvertnet.datasets import write_manifest
from xvertnet.shard_store import file_attrs, item_ids, read_item


def test_mixed_shard_keeps_good_images_and_reports_bad_ones(tmp_path, rg1_path, rg1_small):
    bad = bad_files(tmp_path, rg1_path, rg1_small)
    good = tmp_path / "good16.png"
    Image.fromarray(np.rint(rg1_small * 4095).astype(np.uint16)).save(good)
    rows = [{"image_id": "rg1", "path": str(rg1_path), "source": "pydicom-data", "bit_depth": 15, "split": "test"}]
    rows.append({"image_id": "good16", "path": good.name, "source": "t", "bit_depth": 16, "split": "train"})
    rows += [{"image_id": kind, "path": path.name, "source": "t", "bit_depth": 8, "split": "train"} for kind, path in bad.items()]
    manifest = tmp_path / "shard.csv"
    write_manifest(pd.DataFrame(rows), manifest)

    code = main(["ingest", "--manifest", str(manifest), "--out", str(tmp_path / "out.h5"), "--rejects", str(tmp_path / "rejects.csv")])

    assert code == 0
    assert item_ids(tmp_path / "out.h5") == ["good16", "rg1"]
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert sorted(rejects["image_id"]) == sorted(bad)
    for _, row in rejects.iterrows():
        assert EXPECTED_REASONS[row["image_id"]] in row["reason"]
    arrays, attrs = read_item(tmp_path / "out.h5", "good16")
    image = arrays["image"]
    assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    provenance = attrs["provenance"]
    assert provenance["detected_bits"] == 12  # the manifest said 16; the data say 12
    assert any("manifest states 16 bits" in note for note in provenance["notes"])
    assert provenance["original_dtype"] == "uint16" and len(provenance["sha256"]) == 64
    assert provenance["photometric"] == "MONOCHROME2"
    rg1 = read_item(tmp_path / "out.h5", "rg1")[1]["provenance"]
    assert rg1["photometric"] == "MONOCHROME1" and "invert (MONOCHROME1)" in rg1["transforms"]
    attrs = file_attrs(tmp_path / "out.h5")
    assert attrs["stage"] == "ingest" and attrs["count"] == 2
    assert set(attrs["inputs_sha256"]) == {str(rg1_path), str(good)}
    assert attrs["software"]["xvertnet"]


def test_cli_ingest_of_single_files(tmp_path, rg1_path):
    code = main(["ingest", str(rg1_path), "--out", str(tmp_path / "one.h5"), "--rejects", str(tmp_path / "r.csv")])
    assert code == 0 and item_ids(tmp_path / "one.h5") == ["RG1_UNCR"]
