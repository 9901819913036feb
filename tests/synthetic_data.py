"""Data made for the tests: synthetic preprocessed shards and bad input files with their reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from scipy import ndimage

from xvertnet.io.shard_store import EVAL_ROIS, TRAIN_ROIS, open_shard_for_writing
from xvertnet.preprocessing.preprocess import PrepParams, preprocess


def synthetic_shards(folder: Path, *, size: int = 32, images: int = 8) -> list[Path]:
    """Two data shards of smooth random 'radiographs' with vertical bright bars, preprocessed by Eqs. 1-6."""
    rng = np.random.default_rng(0)
    params = PrepParams()
    paths = []
    for shard_index in range(2):
        path = folder / f"shard-{shard_index:05d}.h5"
        with open_shard_for_writing(
            path, stage="prep", params=params.record(), upstream={"roi": {"canonical_height": 64}}
        ) as shard:
            for index in range(images // 2):
                arrays = {}
                for roi in (*TRAIN_ROIS, *EVAL_ROIS):
                    image = ndimage.gaussian_filter(rng.random((size, size)), 2)
                    image[:, size // 2 - 3 : size // 2 + 3] += 0.3 * (1 + np.sin(np.arange(size) / 2))[:, None]
                    image = (image - image.min()) / (image.max() - image.min())
                    result = preprocess(image, params)
                    arrays.update({f"{roi}/{key}": result[key] for key in ("X", "Xp", "Y")})
                split = "val" if index == 0 else "train"
                shard.add(f"img{shard_index}{index}", arrays, {"split": split, "boxes": {}, "scale": 1.0})
        paths.append(path)
    return paths


def bad_files(tmp_path, rg1_path, rg1_small):
    import tifffile

    files = {}
    files["zero-byte"] = tmp_path / "empty.png"
    files["zero-byte"].write_bytes(b"")
    good = write_png(tmp_path / "good.png", np.rint(rg1_small * 255).astype(np.uint8))
    data = good.read_bytes()
    files["truncated"] = tmp_path / "truncated.png"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["text-as-dicom"] = tmp_path / "notes.dcm"
    files["text-as-dicom"].write_text("this is a radiology report, not an image\n")
    ds = pydicom.dcmread(rg1_path)
    del ds.PixelData
    files["no-pixel-data"] = tmp_path / "nopixels.dcm"
    ds.save_as(files["no-pixel-data"])
    files["one-pixel"] = write_png(tmp_path / "one.png", np.zeros((1, 1), np.uint8))
    files["size-bomb-png"] = bomb_png(tmp_path / "bomb.png")
    ds = pydicom.dcmread(rg1_path)
    ds.Rows, ds.Columns = 65535, 65535
    files["size-bomb-dicom"] = tmp_path / "bomb.dcm"
    ds.save_as(files["size-bomb-dicom"])
    nan = rg1_small.astype(np.float32).copy()
    nan[10, 10] = np.nan
    files["nan-tiff"] = tmp_path / "nan.tif"
    tifffile.imwrite(files["nan-tiff"], nan)
    files["unknown-format"] = tmp_path / "image.xyz"
    files["unknown-format"].write_bytes(b"\x00" * 100)
    files["all-zero"] = write_png(tmp_path / "blank.png", np.zeros((64, 64), np.uint8))
    files["near-constant"] = write_png(tmp_path / "near_blank.png", near_constant_image())
    return files


def near_constant_image() -> np.ndarray:
    """A blank exposure: grey 100 +- 1 with a small burnt-in label (60 of 16384 pixels at 255)."""
    image = (100 + np.random.default_rng(1).integers(-1, 2, (128, 128))).astype(np.uint8)
    image[4:9, 4:16] = 255
    return image


EXPECTED_REASONS = {
    "zero-byte": "empty file",
    "truncated": "cannot decode PNG",
    "text-as-dicom": "not a DICOM file",
    "no-pixel-data": "without Pixel Data",
    "one-pixel": "below the minimum side",
    "size-bomb-png": "exceeds the limit",
    "size-bomb-dicom": "exceeds the limit",
    "nan-tiff": "NaN or Inf",
    "unknown-format": "unsupported format",
    "all-zero": "constant image (every pixel = 0), nothing to enhance",
    "near-constant": "near-constant image (99 % of the pixels within",
}

#: Files the readers read and ingest refuses (nothing to enhance): the reason is ``flat_image_reason``'s.
REFUSED_AFTER_READING = ("all-zero", "near-constant")


def write_png(path, array):
    Image.fromarray(array).save(path, format="PNG")
    return path


def bomb_png(path, width=100_000, height=100_000):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def observer_study(
    gains: dict, *, patients=("p1", "p2"), views=(), levels: int = 6, realisations: int = 8, size: int = 32, seed=0
):
    """Displayed patches and cases of a fracture-detectability study, made up: per patient (and view, when given),
    level (odd levels behind the heart, even above), realisation and fracture type, a signal-absent patch and one of
    each grade. Every method shows the same noise and the lesion (a horizontal endplate-like band) at ``gains[name]``
    times the original's faint strength."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - (size - 1) / 2.0
    band = np.exp(-((y / 2.0) ** 2)) * (np.abs(x) < 10)
    rows = []
    for patient in patients:
        for view in views or (None,):
            for level in range(levels):
                for realisation in range(realisations):
                    for kind in ("wedge", "biconcave"):  # a signal-absent patch where each type of lesion would be
                        for grade in (0, 1, 2):
                            rows.append(
                                {
                                    "patient": patient,
                                    **({"view": view} if views else {}),
                                    "level": level,
                                    "region": "behind_heart" if level % 2 else "above_heart",
                                    "realisation": realisation,
                                    "present": grade > 0,
                                    "kind": kind,
                                    "grade": grade,
                                }
                            )
    cases = pd.DataFrame(rows)
    noise = 0.5 + 0.08 * rng.standard_normal((len(cases), size, size))
    strength = np.where(cases["present"], 0.02 * cases["grade"], 0.0)[:, None, None] * band
    patches = {name: np.clip(noise + gain * strength, 0, 1).astype(np.float32) for name, gain in gains.items()}
    return patches, cases
