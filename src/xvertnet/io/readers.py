"""Reading chest radiographs of every supported format into one typed record.

Every reader returns an :class:`ImageRecord` whose ``pixels`` are a float32 2-D
array in [0, 1] with bone bright (the MONOCHROME2 convention), plus what was done
to get there (the provenance). Readers sit in a registry keyed by format; the
format is sniffed from the file's first bytes, the extension only breaks ties.

Bad input never crashes a batch: a reader raises :class:`InputImageError`, whose
message names the file and the reason on one line, and the caller records it.
Image dimensions are checked against ``max_pixels`` from the header, before any
pixel buffer is allocated.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np

from xvertnet.errors import InputImageError, InvalidValueError
from xvertnet.settings import FromConfig

#: Default refusal threshold for a header's claimed size (8000 x 8000 pixels; the
#: largest chest radiographs in the public sets, Montgomery's 4020 x 4892, are 19.7 M).
DEFAULT_MAX_PIXELS = 64_000_000
#: Smallest accepted side in pixels; a 1 x 1 "radiograph" is refused.
DEFAULT_MIN_SIDE = 32
#: Bit depths a radiograph is stored with; a detected depth is rounded up to one of these.
STANDARD_BIT_DEPTHS = (8, 10, 12, 14, 16)
#: JSRT raw format: 2048 x 2048, big-endian uint16 holding 12 bits, no header.
JSRT_SHAPE = (2048, 2048)
JSRT_BITS = 12
#: An image whose central 99 % of pixel values (0.5th to 99.5th percentile, on the [0, 1]
#: scale) span less than this is near-constant: no anatomy to enhance or measure (a real
#: radiograph, even the demo's range-compressed 'low_contrast' DRRs, spans more than 0.2).
NEAR_CONSTANT_SPREAD = 0.01
#: Pixels above which :func:`flat_image_reason` takes its percentiles on a regular grid of the image.
PERCENTILE_PIXELS = 1 << 22
#: ITU-R BT.601 luma weights, as MATLAB's rgb2gray.
RGB_TO_GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


@dataclasses.dataclass(frozen=True)
class ReadOptions(FromConfig):
    """Options shared by every reader.

    Parameters
    ----------
    max_pixels : int
        Refuse an image whose header claims more pixels than this.
    min_side : int
        Refuse an image whose shorter side is below this.
    jsrt_invert : bool
        JSRT raw files store dense (bone) as low values; invert them so bone is bright.
    """

    SECTION: ClassVar[str] = "ingest"
    ELSEWHERE: ClassVar[tuple[str, ...]] = ("shard_size",)

    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE
    jsrt_invert: bool = True


@dataclasses.dataclass
class ImageRecord:
    """One radiograph, normalised: float32 ``pixels`` (H, W) in [0, 1], bone bright."""

    pixels: np.ndarray
    source: str
    format: str
    original_dtype: str
    container_bits: int
    detected_bits: int
    photometric: str
    transforms: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def provenance(self) -> dict:
        """The record's provenance, without the pixels (JSON-serialisable)."""
        fields = {  # not dataclasses.asdict: it deep-copies the pixels before they could be dropped
            field.name: copy.deepcopy(getattr(self, field.name))
            for field in dataclasses.fields(self)
            if field.name != "pixels"
        }
        fields["shape"] = list(self.pixels.shape)
        return fields


Reader = Callable[[Path, ReadOptions], ImageRecord]
READERS: dict[str, Reader] = {}
EXTENSIONS = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".img": "jsrt",
    ".dcm": "dicom",
    ".dicom": "dicom",
}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Register ``function`` as the reader of format ``name``."""

    def decorate(function: Reader) -> Reader:
        READERS[name] = function
        return function

    return decorate


def detect_format(path) -> str:
    """Name the file's format from its first bytes, else from its extension."""
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(132)
    if head[128:132] == b"DICM":  # first: a DICOM preamble may itself look like a TIFF header
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    by_extension = EXTENSIONS.get(path.suffix.lower())
    if by_extension is None:
        raise InputImageError(path, f"unsupported format (extension '{path.suffix}', no known signature)")
    return by_extension


def read_image(path, options: ReadOptions | None = None) -> ImageRecord:
    """Read one radiograph of any supported format.

    Parameters
    ----------
    path : str or Path
        PNG (8/16 bit), JPEG, TIFF, JSRT raw ``.IMG`` or DICOM.
    options : ReadOptions, optional
        Size limits and reader options.

    Returns
    -------
    ImageRecord
        ``pixels`` float32 (H, W) in [0, 1], bone bright, plus provenance.

    Raises
    ------
    InputImageError
        The file is missing, empty, truncated, unsupported, too large or too
        small, not finite, or not a grey-level image; the message names it.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> record = read_image(get_testdata_file("RG1_UNCR.dcm"))
    >>> record.pixels.dtype, record.photometric
    (dtype('float32'), 'MONOCHROME1')
    """
    options = options or ReadOptions()
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise InputImageError(path, "is a directory, not an image file")
        raise InputImageError(path, "no such file" if not path.exists() else "not a regular file")
    if path.stat().st_size == 0:
        raise InputImageError(path, "empty file (0 bytes)")
    fmt = detect_format(path)
    record = READERS[fmt](path, options)
    pixels = record.pixels
    if pixels.ndim != 2:
        raise InputImageError(path, f"expected a 2-D grey image after reading, got shape {pixels.shape}")
    _check_shape(path, pixels.shape, options)
    if not np.isfinite(pixels).all():
        raise InputImageError(path, "pixel values contain NaN or Inf")
    pixels = pixels.astype(np.float32, copy=False)
    if pixels.size and not (pixels.min() >= 0.0 and pixels.max() <= 1.0):  # clipping a copy costs a whole image
        pixels = np.clip(pixels, 0.0, 1.0)
    record.pixels = pixels
    return record


def flat_image_reason(pixels: np.ndarray) -> str | None:
    """Why a [0, 1] image is (near-)constant, on one line, or None when it is not.

    Constant: every pixel has one value. Near-constant: the 0.5th to 99.5th percentile range is
    below :data:`NEAR_CONSTANT_SPREAD` (a blank exposure with a burnt-in label stays blank). The
    percentiles of an image above :data:`PERCENTILE_PIXELS` are those of a regular grid of its
    pixels (every k-th row and column), which tell a blank image from a radiograph as well.
    """
    low, high = float(pixels.min()), float(pixels.max())
    if high == low:
        return f"constant image (every pixel = {low:.4g}{'' if low == 0 else ' on the 0-1 scale'})"
    step = max(1, int(np.ceil(np.sqrt(pixels.size / PERCENTILE_PIXELS))))
    bottom, top = (float(v) for v in np.percentile(pixels[::step, ::step], (0.5, 99.5)))
    if top - bottom < NEAR_CONSTANT_SPREAD:
        return (
            f"near-constant image (99 % of the pixels within {top - bottom:.2g} of each other on the 0-1 scale, "
            f"below {NEAR_CONSTANT_SPREAD:g})"
        )
    return None


# --------------------------------------------------------------------------- helpers


def _check_shape(path, shape, options: ReadOptions) -> None:
    """Refuse absurd sizes from the header's numbers, before allocating pixels."""
    height, width = int(shape[0]), int(shape[1])
    if height * width > options.max_pixels:
        raise InputImageError(path, f"image size {width}x{height} exceeds the limit of {options.max_pixels} pixels")
    if min(height, width) < options.min_side:
        raise InputImageError(
            path, f"image size {width}x{height} is below the minimum side of {options.min_side} pixels"
        )


def detect_bit_depth(values: np.ndarray, container_bits: int) -> int:
    """The bit depth the data actually use, rounded up to a standard depth.

    A 16-bit container often holds 10, 12 or 14 bits; the maximum value tells
    (documentation does not). 8-bit containers are taken as 8 bits.
    """
    if container_bits <= 8:
        return 8
    peak = int(values.max()) if values.size else 0
    needed = max(1, math.ceil(math.log2(peak + 1)))
    for depth in STANDARD_BIT_DEPTHS:
        if needed <= depth <= container_bits:
            return depth
    return container_bits


def _normalise_integers(path, values: np.ndarray, record_transforms: list[str]) -> tuple[np.ndarray, int, int]:
    """Map unsigned integer pixels to [0, 1] by their detected bit depth."""
    if values.dtype.kind not in "ui":
        raise InputImageError(path, f"expected integer pixels, got {values.dtype}")
    if values.dtype.kind == "i" and values.size and values.min() < 0:
        raise InputImageError(path, f"negative pixel values in a {values.dtype} image")
    container = values.dtype.itemsize * 8
    depth = detect_bit_depth(values, container)
    scale = float(2**depth - 1)
    record_transforms.append(f"divide by 2^{depth}-1 (detected {depth} bits in a {container}-bit container)")
    pixels = values.astype(np.float32)
    np.divide(pixels, np.float32(scale), out=pixels)  # in place: one image allocated, not two
    return pixels, container, depth


def _to_gray(path, values: np.ndarray, notes: list[str], transforms: list[str]) -> np.ndarray:
    """Convert (H, W, C) colour to grey with MATLAB's rgb2gray weights, with a warning."""
    channels = values.shape[2]
    if channels in (2, 4):  # grey+alpha or RGBA: drop the alpha channel, saying so when it hid anything
        alpha = values[..., -1]
        opaque = np.iinfo(alpha.dtype).max if alpha.dtype.kind in "ui" else 1.0
        hidden = float(np.mean(alpha != opaque))
        if hidden:
            warnings.warn(
                f"{path}: alpha channel dropped ({100 * hidden:.3g} % of the pixels are not opaque; "
                "their grey values are used as stored)",
                stacklevel=3,
            )
            notes.append(f"alpha channel dropped ({100 * hidden:.3g} % of the pixels not opaque)")
        transforms.append("drop alpha channel")
        values = values[..., :-1]
        channels -= 1
    if channels == 1:
        return values[..., 0]
    if channels != 3:
        raise InputImageError(path, f"expected 1, 3 or 4 channels, got {channels}")
    message = f"{path}: colour image converted to grey (rgb2gray weights)"
    warnings.warn(message, stacklevel=3)
    notes.append("colour image converted to grey")
    transforms.append("rgb2gray")
    weights = np.asarray(RGB_TO_GRAY, dtype=np.float64)
    gray = values.astype(np.float64) @ weights
    if values.dtype.kind in "ui":
        return np.rint(gray).astype(values.dtype)
    return gray


# --------------------------------------------------------------------------- readers


def _read_with_pillow(path: Path, options: ReadOptions, fmt: str) -> ImageRecord:
    from PIL import Image

    try:
        with _size_limit_is_ours(Image), Image.open(path) as image:
            width, height = image.size
            _check_shape(path, (height, width), options)
            mode = image.mode
            if mode == "1":
                raise InputImageError(path, "1-bit (black and white) image, not a radiograph")
            if mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                image = image.convert("RGBA" if "A" in mode else "RGB")
            image.load()
            values = np.asarray(image)
    except InputImageError:
        raise
    except Image.DecompressionBombError as error:  # not expected: Pillow's own check is off while we read
        raise InputImageError(path, f"refused by Pillow as a decompression bomb: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InputImageError(path, f"cannot decode {fmt.upper()}: {error}") from None

    transforms: list[str] = []
    notes: list[str] = []
    original_dtype = str(values.dtype)
    if values.ndim == 3:
        values = _to_gray(path, values, notes, transforms)
    if values.dtype.kind == "f":
        return _float_record(path, values, fmt, original_dtype, "MONOCHROME2", transforms, notes)
    if values.dtype.kind == "i":  # Pillow's mode "I" (int32) for some 16-bit files
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise InputImageError(
                path, f"32-bit integer pixels outside 0..65535 (min {values.min()}, max {values.max()})"
            )
        values = values.astype(np.uint16)
    pixels, container, depth = _normalise_integers(path, values, transforms)
    return ImageRecord(pixels, str(path), fmt, original_dtype, container, depth, "MONOCHROME2", transforms, notes)


@contextlib.contextmanager
def _size_limit_is_ours(pillow_image_module):
    """Switch off Pillow's decompression-bomb limit while we open a file: ``max_pixels`` (ours) is checked
    from the header before anything is decoded, and is the one limit a user sets (above or below Pillow's)."""
    previous = pillow_image_module.MAX_IMAGE_PIXELS
    pillow_image_module.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        pillow_image_module.MAX_IMAGE_PIXELS = previous


@register_reader("png")
def read_png(path: Path, options: ReadOptions) -> ImageRecord:
    """PNG, 8 or 16 bit, grey or colour; the real bit depth is detected from the data."""
    return _read_with_pillow(path, options, "png")


@register_reader("jpeg")
def read_jpeg(path: Path, options: ReadOptions) -> ImageRecord:
    """Baseline 8-bit JPEG, grey or colour."""
    return _read_with_pillow(path, options, "jpeg")


def _float_record(path, values, fmt, original_dtype, photometric, transforms, notes) -> ImageRecord:
    """Float pixels: kept when already in [0, 1], else min-max scaled (recorded)."""
    values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise InputImageError(path, "pixel values contain NaN or Inf")
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 1.0:
        if high <= low:
            raise InputImageError(path, f"constant float image (value {low})")
        values = (values - low) / (high - low)
        transforms.append(f"min-max scale float range [{low:g}, {high:g}] to [0, 1]")
    return ImageRecord(values, str(path), fmt, original_dtype, 32, 32, photometric, transforms, notes)


@register_reader("tiff")
def read_tiff(path: Path, options: ReadOptions) -> ImageRecord:
    """TIFF: integer or float, grey or colour; MINISWHITE is inverted."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise InputImageError(path, "TIFF without image pages")
            page = tif.pages[0]
            _check_shape(path, page.shape[:2], options)
            minimum_is_white = page.photometric == tifffile.PHOTOMETRIC.MINISWHITE
            values = page.asarray()
    except InputImageError:
        raise
    except Exception as error:  # tifffile raises several types for damaged files
        raise InputImageError(path, f"cannot decode TIFF: {type(error).__name__}: {error}") from None

    transforms: list[str] = []
    notes: list[str] = []
    original_dtype = str(values.dtype)
    photometric = "MINISWHITE" if minimum_is_white else "MINISBLACK"
    if values.ndim == 3:
        values = _to_gray(path, values, notes, transforms)
    if values.dtype.kind == "f":
        record = _float_record(path, values, "tiff", original_dtype, photometric, transforms, notes)
    elif values.dtype.kind in "ui":
        pixels, container, depth = _normalise_integers(path, values, transforms)
        record = ImageRecord(
            pixels, str(path), "tiff", original_dtype, container, depth, photometric, transforms, notes
        )
    else:
        raise InputImageError(path, f"unsupported TIFF sample type {values.dtype}")
    if minimum_is_white:
        record.pixels = 1.0 - record.pixels
        record.transforms.append("invert (MINISWHITE)")
    return record


@register_reader("jsrt")
def read_jsrt(path: Path, options: ReadOptions) -> ImageRecord:
    """JSRT raw ``.IMG``: 2048 x 2048 big-endian uint16, 12 bits, no header."""
    expected = JSRT_SHAPE[0] * JSRT_SHAPE[1] * 2
    size = path.stat().st_size
    if size != expected:
        raise InputImageError(
            path, f"JSRT raw file has {size} bytes, expected {expected} (2048x2048 big-endian uint16)"
        )
    _check_shape(path, JSRT_SHAPE, options)
    values = np.fromfile(path, dtype=">u2").reshape(JSRT_SHAPE).astype(np.uint16)
    peak = int(values.max())
    if peak >= 2**JSRT_BITS:
        raise InputImageError(
            path, f"JSRT raw values reach {peak}, above 12 bits (4095): wrong byte order or not a JSRT image"
        )
    transforms = ["read big-endian uint16 2048x2048", "divide by 2^12-1 (JSRT 12 bits)"]
    pixels = values.astype(np.float32) / np.float32(2**JSRT_BITS - 1)
    photometric = "MONOCHROME1" if options.jsrt_invert else "MONOCHROME2"
    if options.jsrt_invert:
        pixels = 1.0 - pixels
        transforms.append("invert (JSRT stores dense tissue dark)")
    return ImageRecord(pixels, str(path), "jsrt", ">u2", 16, JSRT_BITS, photometric, transforms, [])


# --------------------------------------------------------------------------- DICOM


def apply_dicom_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2), mapping to [0, 1] instead of the output range.

    ``LINEAR``: y = ((x - (c - 0.5)) / (w - 1) + 0.5) clipped; ``LINEAR_EXACT``:
    y = (x - c) / w + 0.5 clipped; ``SIGMOID``: y = 1 / (1 + exp(-4 (x - c) / w)).
    """
    function = (function or "LINEAR").upper()
    values = np.asarray(values, dtype=np.float64)
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise InvalidValueError(f"LINEAR_EXACT window width must be > 0, got {width}")
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if width < 1:
        raise InvalidValueError(f"LINEAR window width must be >= 1, got {width}")
    if width == 1:
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _first(value):
    """First value of a possibly multi-valued DICOM element."""
    if value is None:
        return None
    try:
        return float(value[0]) if hasattr(value, "__len__") and not isinstance(value, str) else float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _stored_bits(ds, values: np.ndarray) -> np.ndarray:
    """Keep only Bits Stored of each value (sign-extended when signed); idempotent."""
    bits = int(ds.get("BitsStored", values.dtype.itemsize * 8))
    container = values.dtype.itemsize * 8
    if bits >= container:
        return values
    mask = (1 << bits) - 1
    if int(ds.get("PixelRepresentation", 0)) == 1:
        sign = 1 << (bits - 1)
        wide = values.astype(np.int64) & mask
        return ((wide ^ sign) - sign).astype(values.dtype)
    return (values.astype(np.int64) & mask).astype(values.dtype)


#: The packages that decode each compressed transfer syntax (pydicom decodes RLE itself; Pillow JPEG baseline and
#: JPEG 2000), for the hint when none is installed.
DECODER_PACKAGES = {
    "JPEG-LS": "pip install pylibjpeg pylibjpeg-libjpeg (or pyjpegls)",
    "High-Throughput JPEG 2000": "pip install pylibjpeg pylibjpeg-openjpeg",
    "JPEG 2000": "pip install pylibjpeg pylibjpeg-openjpeg",
    "JPEG": "pip install pylibjpeg pylibjpeg-libjpeg",
    "RLE": "pip install pylibjpeg pylibjpeg-rle",
}


@contextlib.contextmanager
def _quiet_pydicom():
    """pydicom logs an ERROR with a traceback for each frame it cannot decode, before raising: the reader turns the
    exception into its one-line reason, so the library's own record would only repeat it as a traceback."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "The number of bytes ... is less than expected": checked before decoding
            yield
    finally:
        logger.setLevel(level)


def _check_native_length(path, ds, rows: int, columns: int) -> None:
    """Uncompressed pixel data must hold Rows x Columns x samples x bits allocated: say what the header claims and
    what the data hold, instead of the shape numpy would give them."""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 0) or 0)
    if not (rows and columns and bits):
        return
    expected = (rows * columns * samples * bits + 7) // 8
    held = len(ds.PixelData)
    if held < expected or held > expected + 1:  # one byte of padding to an even length is allowed
        raise InputImageError(
            path,
            f"the header's Rows x Columns ({rows} x {columns}, {samples} sample(s) of {bits} bits) "
            f"need {expected} bytes of pixel data, the file holds {held}",
        )


def _decode_failure(syntax, error: Exception) -> str:
    """The true reason a compressed image did not decode: no decoder installed (naming the package that provides
    one for this transfer syntax) or a decoder that failed on the data (damaged)."""
    from pydicom.pixels import get_decoder

    name = syntax.name if syntax is not None else "unknown transfer syntax"
    text = " ".join(str(error).split())
    try:
        decoder = get_decoder(syntax) if syntax is not None else None
    except (NotImplementedError, ValueError):
        decoder = None
    if decoder is not None and not decoder.is_available:
        hint = next(
            (package for key, package in DECODER_PACKAGES.items() if key in name), "see pydicom's pixel data handlers"
        )
        return f"no decoder for '{name}' is installed ({hint})"
    if decoder is not None:
        plugins = ", ".join(decoder.available_plugins) or "pydicom"
        return f"pixel data of frame 1 damaged: the '{name}' decoder ({plugins}) failed: {text[:300]}"
    return f"cannot decode DICOM pixel data ({name}): {text[:300]}"


@register_reader("dicom")
def read_dicom(path: Path, options: ReadOptions) -> ImageRecord:
    """DICOM in the standard's order: Modality LUT, VOI LUT or window, MONOCHROME1 inversion."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:  # pydicom's text suggests force=True, which means nothing here
        raise InputImageError(
            path, "not a DICOM file (no 'DICM' marker at byte 128 and no DICOM file meta header)"
        ) from None
    except Exception as error:
        raise InputImageError(path, f"cannot parse DICOM: {type(error).__name__}: {error}") from None

    if "PixelData" not in ds:
        for keyword in ("FloatPixelData", "DoubleFloatPixelData"):
            if keyword in ds:
                raise InputImageError(
                    path,
                    f"{keyword} (floating-point pixels, as parametric maps store them) is not "
                    "supported: a radiograph stores integer Pixel Data",
                )
        raise InputImageError(path, "DICOM without Pixel Data element")
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    _check_shape(path, (rows, columns), options)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise InputImageError(path, f"multi-frame DICOM ({frames} frames) is not a single radiograph")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric == "PALETTE COLOR":
        raise InputImageError(path, "unsupported photometric interpretation PALETTE COLOR")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is None or not syntax.is_compressed:
        _check_native_length(path, ds, rows, columns)
    try:
        with _quiet_pydicom():
            values = ds.pixel_array
    except Exception as error:
        raise InputImageError(path, _decode_failure(syntax, error)) from None

    transforms: list[str] = []
    notes: list[str] = []
    original_dtype = str(values.dtype)
    bits_allocated = int(ds.get("BitsAllocated", values.dtype.itemsize * 8))
    bits_stored = int(ds.get("BitsStored", bits_allocated))
    if values.ndim == 3:
        if photometric.startswith("MONOCHROME"):
            raise InputImageError(
                path,
                f"the pixel data decode to shape {values.shape}, not the header's Rows x Columns "
                f"({rows} x {columns}) of one {photometric} frame",
            )
        values = _to_gray(path, values, notes, transforms)
    if values.dtype.kind in "ui":
        values = _stored_bits(ds, values)
        transforms.append(f"keep {bits_stored} stored bits")

    # Range of the stored values, for normalising when no VOI is given.
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    stored_low = -(2 ** (bits_stored - 1)) if signed else 0
    stored_high = 2 ** (bits_stored - 1) - 1 if signed else 2**bits_stored - 1

    # 1. Modality LUT (Rescale Slope/Intercept or a Modality LUT Sequence).
    slope = _first(ds.get("RescaleSlope"))
    intercept = _first(ds.get("RescaleIntercept"))
    has_modality_lut = "ModalityLUTSequence" in ds
    if has_modality_lut or slope is not None or intercept is not None:
        values = apply_modality_lut(values, ds)
        if has_modality_lut:
            transforms.append("Modality LUT Sequence")
            modality_range = (float(np.min(values)), float(np.max(values)))
        else:
            slope = 1.0 if slope is None else slope
            intercept = 0.0 if intercept is None else intercept
            transforms.append(f"rescale slope {slope:g} intercept {intercept:g}")
            ends = sorted((slope * stored_low + intercept, slope * stored_high + intercept))
            modality_range = (ends[0], ends[1])
    else:
        modality_range = (float(stored_low), float(stored_high))

    # 2. VOI: LUT sequence first, else the first window, else the modality range.
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        item = ds.VOILUTSequence[0]
        lut_bits = int(item.LUTDescriptor[2])
        values = apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float64) / (2**lut_bits - 1)
        transforms.append(f"VOI LUT Sequence ({lut_bits}-bit output)")
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR")
        try:
            values = apply_dicom_window(values, center, width, function)
        except ValueError as error:
            raise InputImageError(path, f"invalid VOI window: {error}") from None
        transforms.append(f"window center {center:g} width {width:g} ({function})")
    else:
        low, high = modality_range
        if high <= low:
            raise InputImageError(path, f"empty value range [{low}, {high}] after the Modality LUT")
        values = (np.asarray(values, dtype=np.float64) - low) / (high - low)
        transforms.append(f"scale modality range [{low:g}, {high:g}] to [0, 1]")

    # 3. MONOCHROME1: minimum is white; invert so bone is bright.
    if photometric == "MONOCHROME1":
        values = 1.0 - values
        transforms.append("invert (MONOCHROME1)")

    pixels = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0).astype(np.float32)
    container = bits_allocated
    return ImageRecord(
        pixels, str(path), "dicom", original_dtype, container, bits_stored, photometric or "unknown", transforms, notes
    )
