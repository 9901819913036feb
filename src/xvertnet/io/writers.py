"""Writing images: 16-bit PNG and derived DICOM, both atomically (nothing half-written on failure)."""

from __future__ import annotations

import json

import numpy as np

from xvertnet.io.atomic import atomic_path


def write_png(path, pixels: np.ndarray) -> None:
    """An integer array (uint8 or uint16, grey) as a PNG, atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def write_png16(path, image: np.ndarray) -> None:
    """A [0, 1] image as a 16-bit grey PNG, atomically."""
    write_png(path, np.rint(np.clip(image, 0.0, 1.0) * 65535).astype(np.uint16))


#: DICOM code of the Purpose of Reference of a Source Image Sequence item (DCM 121322).
SOURCE_FOR_PROCESSING = ("121322", "DCM", "Source image for image processing operation")


def write_derived_dicom(
    source_path, image: np.ndarray, out_path, description: dict, *, uids: tuple[str, str] | None = None
) -> None:
    """A derived DICOM: the source's patient and study, a new series and instance, the pixels as 16-bit MONOCHROME2.

    ImageType DERIVED/SECONDARY; a Source Image Sequence pointing at the original with its
    purpose (DCM 121322); the derivation's own creation and content date/time, General
    Equipment (Manufacturer, model, software version) and file meta implementation; lossy
    compression of the source is kept on record (once lossy, always lossy); the software
    version, model hashes and parameters in Derivation Description. ``dciodvfy`` reports
    no error that the source does not have (``tests/io/test_writers.py``). ``uids`` gives the derived series' and
    instance's UIDs (the DICOM node derives them from the source's, so that a resent image is the same instance);
    without, new ones are generated.
    """
    import datetime

    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    from xvertnet import __version__

    ds = pydicom.dcmread(source_path)
    source_sop_class, source_sop_instance = ds.SOPClassUID, ds.SOPInstanceUID
    lossy = str(ds.get("LossyImageCompression", "")) == "01"
    for keyword in (
        "WindowCenter",
        "WindowWidth",
        "VOILUTSequence",
        "ModalityLUTSequence",
        "RescaleSlope",
        "RescaleIntercept",
        "RescaleType",
        "VOILUTFunction",
        "WindowCenterWidthExplanation",
        "PresentationLUTShape",
        "NumberOfFrames",
        *(() if lossy else ("LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod")),
    ):
        if keyword in ds:
            delattr(ds, keyword)
    pixels = np.rint(np.clip(image, 0.0, 1.0) * 65535).astype(np.uint16)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.ImplementationVersionName = f"XVERTNET_{__version__}"[:16]
    ds.SeriesInstanceUID, ds.SOPInstanceUID = uids if uids is not None else (generate_uid(), generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    now = datetime.datetime.now()
    ds.InstanceCreationDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.SeriesNumber = int(ds.get("SeriesNumber", 0) or 0) + 1000
    ds.SeriesDescription = "XVertNet vertebra enhancement"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.Manufacturer = "xvertnet"
    ds.ManufacturerModelName = "xvertnet vertebra enhancement"
    ds.SoftwareVersions = f"xvertnet {__version__}"
    ds.DerivationDescription = json.dumps(description, sort_keys=True)[:1024]
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = SOURCE_FOR_PROCESSING
    source = Dataset()
    source.ReferencedSOPClassUID = source_sop_class
    source.ReferencedSOPInstanceUID = source_sop_instance
    source.PurposeOfReferenceCodeSequence = [purpose]
    ds.SourceImageSequence = [source]
    with atomic_path(out_path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
