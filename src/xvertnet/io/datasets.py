"""Manifests and shards: which images a data set holds and how they are grouped into jobs.

A manifest is a CSV with at least the columns of :data:`MANIFEST_COLUMNS`; paths in
it are relative to the CSV's own folder (absolute paths are kept as they are), so
a results folder can be moved as a whole. Large data sets (NIH ChestX-ray14 has
112,120 images) are processed in shards of a configurable size: one job and one
HDF5 file per shard, never one job per image.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import ClassVar

import pandas as pd

from xvertnet.errors import InvalidValueError, XvertnetError
from xvertnet.io.atomic import atomic_path
from xvertnet.settings import FromConfig

#: Columns every manifest has.
MANIFEST_COLUMNS = ("image_id", "path", "source", "bit_depth", "split")
SPLITS = ("train", "val", "test")
#: Image ids become HDF5 group names and file names: keep them portable.
IMAGE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SHARD_PATTERN = r"shard-\d{5}"


@dataclasses.dataclass(frozen=True)
class ShardSettings(FromConfig):
    """How a manifest is cut into shard jobs (config ``ingest.shard_size``; a data set's ``shard_size`` overrides it)."""

    SECTION: ClassVar[str] = "ingest"
    ELSEWHERE: ClassVar[tuple[str, ...]] = ("max_pixels", "min_side", "jsrt_invert")

    shard_size: int = 256


class ManifestError(XvertnetError):
    """A manifest is malformed; the message names the file and the problem."""


def write_manifest(manifest: pd.DataFrame, path) -> None:
    """Write a manifest atomically."""
    with atomic_path(path) as tmp:
        manifest.to_csv(tmp, index=False)


def read_manifest(path) -> pd.DataFrame:
    """Read and check a manifest; add ``resolved_path`` (absolute) to each row.

    Raises
    ------
    ManifestError
        Missing columns, duplicate or unsafe image ids, or unknown splits.
    """
    path = Path(path)
    try:
        manifest = pd.read_csv(path, dtype={"image_id": str, "path": str, "split": str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ManifestError(f"{path}: cannot read manifest: {error}") from None
    missing = [column for column in MANIFEST_COLUMNS if column not in manifest.columns]
    if missing:
        raise ManifestError(f"{path}: missing columns {missing}, expected at least {list(MANIFEST_COLUMNS)}")
    duplicated = manifest["image_id"][manifest["image_id"].duplicated()].unique().tolist()
    if duplicated:
        raise ManifestError(f"{path}: duplicate image ids {duplicated[:5]}")
    unsafe = [value for value in manifest["image_id"] if not IMAGE_ID_PATTERN.match(value)]
    if unsafe:
        raise ManifestError(f"{path}: image ids must match {IMAGE_ID_PATTERN.pattern}, got {unsafe[:5]}")
    unknown = sorted(set(manifest["split"]) - set(SPLITS))
    if unknown:
        raise ManifestError(f"{path}: unknown splits {unknown}, expected {list(SPLITS)}")
    folder = path.parent
    manifest["resolved_path"] = [str(_resolve(folder, value)) for value in manifest["path"]]
    for column in [c for c in manifest.columns if c.endswith("_path") and c not in ("resolved_path",)]:
        manifest[f"resolved_{column}"] = [str(_resolve(folder, v)) if v else "" for v in manifest[column]]
    return manifest


def shards_by_dataset(shards, datasets) -> dict[str, list[Path]]:
    """Stage shards (``results/{dataset}/{stage}/{shard}.h5``, :meth:`xvertnet.plan.Plan.stage_shard`) grouped by their data
    set, so that a stage can look every image up in its own data set's manifest (two data sets may share
    image ids). With one data set, every shard is its."""
    datasets = list(datasets)
    grouped: dict[str, list[Path]] = {}
    for shard in map(Path, shards):
        dataset = datasets[0] if len(datasets) == 1 else shard.parent.parent.name
        if dataset not in datasets:
            raise InvalidValueError(
                f"{shard}: not a stage shard of one of the data sets {datasets} "
                "(expected results/<dataset>/<stage>/<shard>.h5)"
            )
        grouped.setdefault(dataset, []).append(shard)
    return grouped


def _resolve(folder: Path, value: str) -> Path:
    candidate = Path(value)
    return candidate if candidate.is_absolute() else (folder / candidate).resolve()


def shard_names(count: int) -> list[str]:
    """Names of ``count`` shards: ``shard-00000``, ``shard-00001`` ..."""
    return [f"shard-{index:05d}" for index in range(count)]


def split_into_shards(manifest_path, out_dir, *, shard_size: int) -> list[Path]:
    """Write one small manifest per shard of ``shard_size`` images; return their paths.

    Images keep the manifest's order, so shard membership is deterministic. Paths
    are rewritten relative to ``out_dir``. Files of an earlier, larger sharding
    are removed so the folder lists exactly the current shards.
    """
    if shard_size < 1:
        raise InvalidValueError(f"shard_size must be >= 1, got {shard_size}")
    manifest = read_manifest(manifest_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    count = max(1, math.ceil(len(manifest) / shard_size))
    names = shard_names(count)
    written = []
    for index, name in enumerate(names):
        part = manifest.iloc[index * shard_size : (index + 1) * shard_size].copy()
        for column in [c for c in part.columns if c.startswith("resolved_")]:
            original = column.removeprefix("resolved_")
            part[original] = [os.path.relpath(v, out_dir.resolve()) if v else "" for v in part[column]]
        part = part.drop(columns=[c for c in part.columns if c.startswith("resolved_")])
        target = out_dir / f"{name}.csv"
        write_manifest(part, target)
        written.append(target)
    for stale in out_dir.glob("shard-*.csv"):
        if stale not in written:
            stale.unlink()
    return written


def _image_id(relative: Path, taken: set[str]) -> str:
    """A portable, unique image id from a file's path below the folder (``a/b/x.dcm`` -> ``a_b_x``)."""
    stem = "_".join([*relative.parent.parts, relative.stem]) if relative.parent.parts else relative.stem
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") or "image"
    if not IMAGE_ID_PATTERN.match(base):
        base = f"img-{base}"
    image_id, count = base, 1
    while image_id in taken:
        count += 1
        image_id = f"{base}-{count}"
    taken.add(image_id)
    return image_id


def manifest_from_folder(
    folder, out_path, *, split: str = "test", source: str | None = None, options=None
) -> tuple[pd.DataFrame, list[dict]]:
    """A manifest of every readable radiograph below ``folder``, with its detected format and bit depth.

    Each file is read once (:func:`xvertnet.io.readers.read_image`): ``bit_depth`` is the depth
    detected from the data (e.g. 12 for 12 bits stored in 16), ``format`` the sniffed format.
    Files that cannot be used are returned as rejects (path and one-line reason), not listed.
    Paths are written relative to the manifest's folder. Returns (manifest, rejects).
    """
    from xvertnet.errors import InputImageError
    from xvertnet.io.readers import EXTENSIONS, read_image

    if split not in SPLITS:
        raise ManifestError(f"split must be one of {list(SPLITS)}, got '{split}'")
    folder, out_path = Path(folder), Path(out_path)
    if not folder.is_dir():
        raise ManifestError(f"{folder}: not a folder")
    candidates = sorted(
        path for path in folder.rglob("*") if path.is_file() and (path.suffix.lower() in EXTENSIONS or not path.suffix)
    )
    rows, rejects, taken = [], [], set()
    for path in candidates:
        try:
            record = read_image(path, options)
        except InputImageError as error:
            rejects.append({"path": str(path), "reason": error.reason})
            continue
        relative = path.relative_to(folder)
        rows.append(
            {
                "image_id": _image_id(relative, taken),
                "path": os.path.relpath(path.resolve(), out_path.parent.resolve()),
                "source": source or folder.name,
                "bit_depth": record.detected_bits,
                "split": split,
                "format": record.format,
                "height": record.pixels.shape[0],
                "width": record.pixels.shape[1],
            }
        )
    if not rows:
        raise ManifestError(f"{folder}: no readable radiograph among {len(candidates)} file(s)")
    manifest = pd.DataFrame(rows)
    write_manifest(manifest, out_path)
    return manifest, rejects


def is_real_radiograph(condition, source) -> bool:
    """A manifest row's image is a radiograph, not a DRR: condition ``real`` or none, or a source not naming a DRR."""
    return str(condition) in ("real", "") or "drr" not in str(source)
