"""Writers: the derived DICOM is a valid instance of its own (checked with dicom3tools' dciodvfy where installed)."""

from __future__ import annotations

import shutil
import subprocess

import pydicom
import pytest
from pydicom.data import get_testdata_file

from xvertnet.io.readers import read_image
from xvertnet.io.writers import SOURCE_FOR_PROCESSING, write_derived_dicom


def _dciodvfy() -> str:
    """The path of dciodvfy, installing Debian's dicom3tools when root; skip with the reason otherwise."""
    found = shutil.which("dciodvfy")
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed and apt-get is not available")
    result = subprocess.run(
        ["apt-get", "install", "-y", "-q", "dicom3tools"], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0 or not shutil.which("dciodvfy"):
        pytest.skip(f"could not install dicom3tools: {result.stderr.strip().splitlines()[-1:]}")
    return shutil.which("dciodvfy")


def _findings(tool: str, path) -> set[str]:
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    return {
        line.strip() for line in (result.stdout + result.stderr).splitlines() if line.startswith(("Error", "Warning"))
    }


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG1_J2KI.dcm"])  # a CR, and the same CR JPEG 2000 lossy
def test_derived_dicom_is_its_own_instance_and_adds_no_validation_finding(tmp_path, name):
    source_path = get_testdata_file(name) if name != "RG1_UNCR.dcm" else None
    if source_path is None:
        from xvertnet.demo.demo_data import real_radiograph_path

        source_path = real_radiograph_path()
    out = tmp_path / "derived.dcm"
    write_derived_dicom(source_path, read_image(source_path).pixels, out, {"software": "xvertnet"})
    source, derived = pydicom.dcmread(source_path), pydicom.dcmread(out)
    assert derived.Manufacturer == "xvertnet" and derived.SoftwareVersions.startswith("xvertnet")
    assert derived.file_meta.ImplementationClassUID != source.file_meta.get("ImplementationClassUID")
    assert (derived.InstanceCreationDate, derived.ContentTime) != (
        source.get("InstanceCreationDate"),
        source.get("ContentTime"),
    )
    purpose = derived.SourceImageSequence[0].PurposeOfReferenceCodeSequence[0]
    assert (purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning) == SOURCE_FOR_PROCESSING
    assert (
        derived.get("LossyImageCompression")
        == source.get("LossyImageCompression")
        == ("01" if "J2KI" in name else None)
    )
    tool = _dciodvfy()
    added = _findings(tool, out) - _findings(tool, source_path)
    assert not [line for line in added if line.startswith("Error")], sorted(added)
