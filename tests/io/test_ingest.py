"""The ingest stage: a shard with good and bad images goes on, and says why it rejected each."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image
from synthetic_data import EXPECTED_REASONS, bad_files

from xvertnet.cli import main
from xvertnet.io.datasets import write_manifest
from xvertnet.io.shard_store import file_attrs, item_ids, read_item


def test_mixed_shard_keeps_good_images_and_reports_bad_ones(tmp_path, rg1_path, rg1_small):
    bad = bad_files(tmp_path, rg1_path, rg1_small)
    good = tmp_path / "good16.png"
    Image.fromarray(np.rint(rg1_small * 4095).astype(np.uint16)).save(good)
    rows = [{"image_id": "rg1", "path": str(rg1_path), "source": "pydicom-data", "bit_depth": 15, "split": "test"}]
    rows.append({"image_id": "good16", "path": good.name, "source": "t", "bit_depth": 16, "split": "train"})
    rows += [
        {"image_id": kind, "path": path.name, "source": "t", "bit_depth": 8, "split": "train"}
        for kind, path in bad.items()
    ]
    manifest = tmp_path / "shard.csv"
    write_manifest(pd.DataFrame(rows), manifest)

    code = main(
        [
            "ingest",
            "--manifest",
            str(manifest),
            "--out",
            str(tmp_path / "out.h5"),
            "--rejects",
            str(tmp_path / "rejects.csv"),
        ]
    )

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


def test_a_corpus_of_damaged_files_leaves_no_traceback_in_the_log(tmp_path, rg1_path, rg1_small):
    """Broken images and malformed DICOMs (a damaged RLE frame, raw bytes declared as JPEG, JPEG-LS without its
    decoder, Rows that do not match the data, Float Pixel Data) through `xvertnet ingest` in a fresh interpreter, as a
    user's terminal shows it: one warning line per rejected file, the true reason in the rejects, no traceback."""
    import pydicom
    import pydicom.uid
    from command_line import run_cli_subprocess
    from test_readers import _encapsulated

    files = bad_files(tmp_path, rg1_path, rg1_small)
    files["rle-damaged"] = _encapsulated(
        tmp_path, rg1_path, pydicom.uid.RLELossless, b"\x01\x00\x00\x00\x40" + b"\x00" * 11, "rle.dcm"
    )
    files["raw-as-jpeg"] = _encapsulated(
        tmp_path, rg1_path, pydicom.uid.JPEGBaseline8Bit, bytes(range(256)) * 4, "jpeg.dcm"
    )
    files["jpeg-ls"] = _encapsulated(
        tmp_path, rg1_path, pydicom.uid.JPEGLSLossless, b"\xff\xd8" + b"\x00" * 64, "jpegls.dcm"
    )
    short = pydicom.dcmread(rg1_path)
    short.Rows, short.Columns = 100, 224
    short.PixelData = np.zeros((50, 224), np.uint16).tobytes()
    files["rows-mismatch"] = tmp_path / "short.dcm"
    short.save_as(files["rows-mismatch"])
    floating = pydicom.dcmread(rg1_path)
    del floating.PixelData
    floating.FloatPixelData = np.zeros(16, np.float32).tobytes()
    files["float-pixels"] = tmp_path / "float.dcm"
    floating.save_as(files["float-pixels"])
    rows = [
        {"image_id": kind, "path": path.name, "source": "t", "bit_depth": 8, "split": "test"}
        for kind, path in files.items()
    ]
    write_manifest(pd.DataFrame(rows), tmp_path / "shard.csv")
    result = run_cli_subprocess(
        "ingest",
        "--manifest",
        tmp_path / "shard.csv",
        "--out",
        tmp_path / "out.h5",
        "--rejects",
        tmp_path / "rejects.csv",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    reasons = pd.read_csv(tmp_path / "rejects.csv").set_index("image_id")["reason"].to_dict()
    assert sorted(reasons) == sorted(files)
    assert "damaged" in reasons["rle-damaged"] and "damaged" in reasons["raw-as-jpeg"]
    assert "no decoder" in reasons["jpeg-ls"] and "pylibjpeg-libjpeg" in reasons["jpeg-ls"]
    assert "need 44800 bytes" in reasons["rows-mismatch"] and "not supported" in reasons["float-pixels"]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) >= len(files)
