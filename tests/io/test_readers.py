"""Readers: every format, built from the real radiograph RG1_UNCR.dcm, and bit-depth handling."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image
from synthetic_data import EXPECTED_REASONS, REFUSED_AFTER_READING, bad_files, bomb_png, write_png

from xvertnet.errors import InputImageError
from xvertnet.io.readers import ReadOptions, apply_dicom_window, detect_bit_depth, flat_image_reason, read_image


@pytest.mark.parametrize(
    ("peak", "container", "expected"),
    [
        (255, 8, 8),
        (10, 8, 8),
        (1023, 16, 10),
        (3000, 16, 12),
        (4095, 16, 12),
        (4096, 16, 14),
        (65535, 16, 16),
        (1500, 16, 12),
    ],
)
def test_detect_bit_depth(peak, container, expected):
    values = np.array([0, peak], dtype=np.uint16 if container == 16 else np.uint8)
    assert detect_bit_depth(values, container) == expected


def test_png_8bit(tmp_path, rg1_small):
    stored = np.rint(rg1_small * 255).astype(np.uint8)
    record = read_image(write_png(tmp_path / "a.png", stored))
    assert record.format == "png" and record.detected_bits == 8 and record.container_bits == 8
    assert record.pixels.dtype == np.float32 and record.pixels.shape == stored.shape
    np.testing.assert_allclose(record.pixels, stored / 255.0, atol=1e-6)


def test_png_16bit_holding_12_bits_is_detected(tmp_path, rg1_small):
    stored = np.rint(rg1_small * 4095).astype(np.uint16)
    record = read_image(write_png(tmp_path / "a.png", stored))
    assert record.detected_bits == 12 and record.container_bits == 16
    np.testing.assert_allclose(record.pixels, stored / 4095.0, atol=1e-6)


def test_png_16bit_full_range(tmp_path, rg1_small):
    stored = np.rint(rg1_small * 65535).astype(np.uint16)
    record = read_image(write_png(tmp_path / "a.png", stored))
    assert record.detected_bits == 16
    np.testing.assert_allclose(record.pixels, stored / 65535.0, atol=1e-6)


def test_jpeg(tmp_path, rg1_small):
    stored = np.rint(rg1_small * 255).astype(np.uint8)
    Image.fromarray(stored).save(tmp_path / "a.jpg", quality=95)
    record = read_image(tmp_path / "a.jpg")
    assert record.format == "jpeg" and record.detected_bits == 8
    assert np.abs(record.pixels - stored / 255.0).mean() < 0.01


def test_rgb_and_rgba_are_converted_to_grey_with_a_warning(tmp_path, rg1_small):
    grey = np.rint(rg1_small * 255).astype(np.uint8)
    rgb = np.stack([grey] * 3, axis=-1)
    rgba = np.concatenate([rgb, np.full(grey.shape + (1,), 255, np.uint8)], axis=-1)
    for name, array in (("rgb.png", rgb), ("rgba.png", rgba)):
        with pytest.warns(UserWarning, match="converted to grey"):
            record = read_image(write_png(tmp_path / name, array))
        assert "rgb2gray" in record.transforms
        np.testing.assert_allclose(record.pixels, grey / 255.0, atol=1.5 / 255)


def test_grey_alpha_warns_when_the_dropped_alpha_hid_pixels(tmp_path, rg1_small):
    import warnings

    grey = np.rint(rg1_small * 255).astype(np.uint8)
    alpha = np.full(grey.shape, 255, np.uint8)
    opaque = Image.fromarray(np.stack([grey, alpha], axis=-1), "LA")
    opaque.save(tmp_path / "opaque.png")
    alpha[:64] = 0  # the top 64 rows transparent
    Image.fromarray(np.stack([grey, alpha], axis=-1), "LA").save(tmp_path / "la.png")
    with pytest.warns(UserWarning) as caught:
        record = read_image(tmp_path / "la.png")
    assert [str(w.message) for w in caught] == [
        f"{tmp_path / 'la.png'}: alpha channel dropped (12.5 % of the pixels are not "
        "opaque; their grey values are used as stored)"
    ]
    assert "drop alpha channel" in record.transforms and record.notes == [
        "alpha channel dropped (12.5 % of the pixels not opaque)"
    ]
    np.testing.assert_array_equal(record.pixels, grey / np.float32(255))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fully opaque alpha hides nothing: no warning
        assert "drop alpha channel" in read_image(tmp_path / "opaque.png").transforms


def test_a_folder_or_a_non_dicom_file_says_what_it_is(tmp_path):
    with pytest.raises(InputImageError, match=f"^{tmp_path}: is a directory, not an image file$"):
        read_image(tmp_path)
    (tmp_path / "report.dcm").write_text("a radiology report\n")
    with pytest.raises(InputImageError) as caught:
        read_image(tmp_path / "report.dcm")
    assert (
        str(caught.value)
        == f"{tmp_path / 'report.dcm'}: not a DICOM file (no 'DICM' marker at byte 128 and no DICOM file meta header)"
    )


def test_max_pixels_is_the_one_limit_above_or_below_pillows(tmp_path):
    from PIL import Image as PillowImage

    pillow_limit = PillowImage.MAX_IMAGE_PIXELS
    header = bomb_png(tmp_path / "tall.png", width=20_000, height=10_000)  # 200 M pixels: Pillow alone refuses it
    assert 20_000 * 10_000 > 2 * pillow_limit
    with pytest.raises(InputImageError, match="image size 20000x10000 exceeds the limit of 64000000 pixels$"):
        read_image(header)
    with pytest.raises(InputImageError) as caught:  # within our limit: decoded, and the data end early
        read_image(header, ReadOptions(max_pixels=300_000_000))
    assert "limit" not in str(caught.value) and "cannot decode PNG: image file is truncated" in str(caught.value)
    assert PillowImage.MAX_IMAGE_PIXELS == pillow_limit  # restored after reading


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_tiff(tmp_path, rg1_small, dtype):
    import tifffile

    array = np.rint(rg1_small * 4095).astype(np.uint16) if dtype == np.uint16 else rg1_small.astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tif", array)
    record = read_image(tmp_path / "a.tif")
    expected = array / 4095.0 if dtype == np.uint16 else array
    np.testing.assert_allclose(record.pixels, expected, atol=1e-6)


def test_tiff_miniswhite_is_inverted(tmp_path, rg1_small):
    import tifffile

    array = np.rint((1 - rg1_small) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", array, photometric="miniswhite")
    record = read_image(tmp_path / "a.tif")
    np.testing.assert_allclose(record.pixels, 1 - array / 255.0, atol=1e-6)
    assert "invert (MINISWHITE)" in record.transforms


def test_jsrt_raw(tmp_path, rg1_stored):
    # JSRT: 2048x2048 big-endian uint16 holding 12 bits, dense tissue dark.
    canvas = np.zeros((2048, 2048), dtype=np.uint16)
    canvas[: rg1_stored.shape[0], : rg1_stored.shape[1]] = rg1_stored >> 3  # 15 -> 12 bits, MONOCHROME1 like JSRT
    path = tmp_path / "JPCLN001.IMG"
    canvas.astype(">u2").tofile(path)
    record = read_image(path)
    assert record.format == "jsrt" and record.detected_bits == 12 and record.pixels.shape == (2048, 2048)
    np.testing.assert_allclose(record.pixels, 1.0 - canvas / 4095.0, atol=1e-6)
    np.testing.assert_allclose(read_image(path, ReadOptions(jsrt_invert=False)).pixels, canvas / 4095.0, atol=1e-6)


def test_jsrt_wrong_size_or_byte_order(tmp_path):
    short = tmp_path / "short.IMG"
    short.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputImageError, match="expected 8388608"):
        read_image(short)
    swapped = tmp_path / "swapped.IMG"
    np.full((2048, 2048), 4000, dtype="<u2").tofile(swapped)  # little-endian: reads as 40975
    with pytest.raises(InputImageError, match="above 12 bits"):
        read_image(swapped)


def test_dicom_rg1_monochrome1_window_and_inversion(rg1_path, rg1_stored):
    record = read_image(rg1_path)
    ds = pydicom.dcmread(rg1_path)
    expected = 1.0 - apply_dicom_window(rg1_stored, float(ds.WindowCenter), float(ds.WindowWidth))
    assert record.photometric == "MONOCHROME1" and record.detected_bits == 15
    assert record.transforms[-1] == "invert (MONOCHROME1)"
    np.testing.assert_allclose(record.pixels, expected, atol=1e-6)
    # Bone bright: the spine (image centre column) is brighter than the right lung field.
    height, width = record.pixels.shape
    spine = record.pixels[height // 3 : height // 2, width // 2 - 40 : width // 2 + 40].mean()
    lung = record.pixels[height // 3 : height // 2, width // 5 : width // 5 + 80].mean()
    assert spine > lung


def test_dicom_window_formula_hand_values():
    # PS3.3 C.11.2.1.2.1, c = 100, w = 51: x <= c - 0.5 - (w - 1)/2 = 74.5 -> 0,
    # x > c - 0.5 + (w - 1)/2 = 124.5 -> 1, else (x - 99.5)/50 + 0.5 (x = 75 -> 0.01).
    values = apply_dicom_window(np.array([0, 74.5, 75, 99.5, 124.5, 200]), 100, 51)
    np.testing.assert_allclose(values, [0, 0, 0.01, 0.5, 1, 1], atol=1e-12)
    np.testing.assert_allclose(apply_dicom_window(np.array([100.0]), 100, 50, "SIGMOID"), [0.5])


def test_dicom_jpeg2000_decodes_like_uncompressed(rg1_path):
    from pydicom.data import get_testdata_file

    lossless = read_image(get_testdata_file("RG1_J2KR.dcm"))
    np.testing.assert_array_equal(lossless.pixels, read_image(rg1_path).pixels)


def _encapsulated(tmp_path, rg1_path, syntax, frame: bytes, name: str):
    """RG1 re-declared with a compressed transfer syntax and ``frame`` as its one encapsulated frame."""
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(rg1_path)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_a_missing_decoder_names_the_package_for_its_transfer_syntax(tmp_path, rg1_path):
    from pydicom.uid import JPEGLSLossless

    path = _encapsulated(tmp_path, rg1_path, JPEGLSLossless, b"\xff\xd8" + b"\x00" * 64, "jpegls.dcm")
    with pytest.raises(InputImageError, match="no decoder for 'JPEG-LS.*pylibjpeg-libjpeg"):
        read_image(path)


@pytest.mark.parametrize(
    "syntax_name, frame",
    [("RLELossless", b"\x01\x00\x00\x00\x40\x00\x00\x00" + b"\x05" * 8), ("JPEGBaseline8Bit", bytes(range(256)) * 4)],
)
def test_dicom_a_decoder_that_fails_says_the_data_are_damaged(tmp_path, rg1_path, syntax_name, frame, caplog, capsys):
    import pydicom.uid

    path = _encapsulated(tmp_path, rg1_path, getattr(pydicom.uid, syntax_name), frame, f"{syntax_name}.dcm")
    with pytest.raises(InputImageError, match="damaged") as raised:
        read_image(path)
    assert "no decoder" not in str(raised.value) and "pip install" not in str(raised.value)
    logged = caplog.text + capsys.readouterr().err
    assert "Traceback" not in logged  # pydicom's own ERROR record with its traceback is not shown


def test_dicom_rows_that_do_not_match_the_data_say_what_the_header_claims_and_what_the_data_hold(
    tmp_path, rg1_path, caplog
):
    ds = pydicom.dcmread(rg1_path)
    ds.Rows, ds.Columns = 100, 224
    ds.PixelData = np.zeros((50, 224), np.uint16).tobytes()
    ds.save_as(tmp_path / "short.dcm")
    with pytest.raises(InputImageError, match=r"Rows x Columns \(100 x 224.*need 44800 bytes.*holds 22400"):
        read_image(tmp_path / "short.dcm")
    assert "Traceback" not in caplog.text


def test_dicom_float_pixel_data_is_not_supported(tmp_path, rg1_path):
    ds = pydicom.dcmread(rg1_path)
    del ds.PixelData
    ds.Rows, ds.Columns = 4, 4
    ds.FloatPixelData = np.zeros(16, np.float32).tobytes()
    ds.save_as(tmp_path / "float.dcm")
    with pytest.raises(InputImageError, match="FloatPixelData .* is not supported"):
        read_image(tmp_path / "float.dcm")


def _small_dicom(tmp_path, rg1_path, array, **elements):
    ds = pydicom.dcmread(rg1_path)
    for key in ("WindowCenter", "WindowWidth"):
        if key in ds:
            delattr(ds, key)
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = array.shape
    ds.PixelData = array.astype(np.uint16).tobytes()
    for key, value in elements.items():
        setattr(ds, key, value)
    path = tmp_path / "small.dcm"
    ds.save_as(path)
    return path


def test_dicom_rescale_without_window_uses_modality_range(tmp_path, rg1_path, rg1_stored):
    array = rg1_stored[::4, ::4]
    path = _small_dicom(tmp_path, rg1_path, array, RescaleSlope=2, RescaleIntercept=-100)
    record = read_image(path)
    low, high = -100.0, 2 * (2**15 - 1) - 100.0
    np.testing.assert_allclose(record.pixels, (2.0 * array - 100 - low) / (high - low), atol=1e-6)
    assert any("rescale slope 2" in step for step in record.transforms)


def test_dicom_voi_lut_sequence(tmp_path, rg1_path, rg1_stored):
    from pydicom.dataset import Dataset

    array = rg1_stored[::4, ::4]
    item = Dataset()
    item.add_new(0x00283002, "US", [32768, 0, 16])  # LUT Descriptor: entries, first value, bits
    lut = (np.arange(32768) >> 7) * 257  # a 16-bit staircase of 256 steps
    item.add_new(0x00283006, "OW", lut.astype("<u2").tobytes())  # LUT Data (> 64 kB: OW)
    path = _small_dicom(tmp_path, rg1_path, array, VOILUTSequence=[item])
    record = read_image(path)
    np.testing.assert_allclose(record.pixels, (array >> 7) / 255.0, atol=1e-6)


def test_dicom_bits_stored_masks_high_bits(tmp_path, rg1_path, rg1_stored):
    array = (rg1_stored[::4, ::4] >> 3).astype(np.uint16)  # 12 significant bits
    dirty = array | 0xF000  # garbage above Bits Stored
    path = _small_dicom(tmp_path, rg1_path, dirty, BitsStored=12, HighBit=11)
    record = read_image(path)
    np.testing.assert_allclose(record.pixels, array / 4095.0, atol=1e-6)


# ---------------------------------------------------------------- bad input: one line naming file and reason


def test_bad_inputs_raise_one_line_errors_naming_file_and_reason(tmp_path, rg1_path, rg1_small):
    import tracemalloc

    for kind, path in bad_files(tmp_path, rg1_path, rg1_small).items():
        if kind in REFUSED_AFTER_READING:  # a valid file whose pixels ingest refuses
            assert EXPECTED_REASONS[kind] in f"{flat_image_reason(read_image(path).pixels)}, nothing to enhance", kind
            continue
        tracemalloc.start()
        with pytest.raises(InputImageError) as caught:
            read_image(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        message = str(caught.value)
        assert "\n" not in message, kind
        assert str(path) in message, kind
        assert EXPECTED_REASONS[kind] in message, f"{kind}: {message}"
        if kind.startswith("size-bomb"):
            assert peak < 200e6, f"{kind} allocated {peak / 1e6:.0f} MB before refusing"
