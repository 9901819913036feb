"""`xvertnet manifest DIR`: a folder of the user's images becomes a manifest the workflow can use."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from xvertnet.cli import main
from xvertnet.io.datasets import read_manifest


def test_manifest_of_a_folder_detects_format_and_bit_depth_and_skips_bad_files(tmp_path, rg1_path, rg1_small, caplog):
    folder = tmp_path / "my images"
    (folder / "ward 2").mkdir(parents=True)
    shutil.copy(rg1_path, folder / "ward 2" / "chest.dcm")
    Image.fromarray(np.rint(rg1_small * 4095).astype(np.uint16)).save(folder / "chest.png")  # 12 bits in 16
    Image.fromarray(np.rint(rg1_small * 255).astype(np.uint8)).save(folder / "chest.jpg")
    (folder / "report.dcm").write_text("not an image")
    assert main(["manifest", str(folder), "--out", str(tmp_path / "manifest.csv")]) == 0
    manifest = pd.read_csv(tmp_path / "manifest.csv").set_index("image_id")
    assert sorted(manifest.index) == ["chest", "chest-2", "ward-2_chest"]
    assert manifest.loc["ward-2_chest", "bit_depth"] == 15 and manifest.loc["ward-2_chest", "format"] == "dicom"
    assert set(manifest["bit_depth"]) == {15, 12, 8} and set(manifest["split"]) == {"test"}
    assert "report.dcm: not a DICOM file" in caplog.text
    resolved = read_manifest(tmp_path / "manifest.csv")  # what the workflow reads: every path resolves
    assert all(Path(path).is_file() for path in resolved["resolved_path"])


def test_manifest_of_a_folder_without_images_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["manifest", str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("xvertnet manifest: error: ")
