"""Ingestion: read a shard of radiographs, normalise bit depth, store them with provenance.

Each image becomes float32 in [0, 1] with bone bright (:mod:`xvertnet.io.readers`), stored
in the shard's HDF5 file with a provenance record (source path, sha256, original
dtype, detected bit depth, photometric interpretation, transforms applied). A bad
image never stops the shard: it is listed in the rejects CSV with a one-line
reason and the rest goes on. A constant or near-constant image (a blank exposure,
:func:`xvertnet.io.readers.flat_image_reason`) is rejected: it has nothing to enhance.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from xvertnet.errors import InputImageError, XvertnetError
from xvertnet.io.atomic import atomic_path
from xvertnet.io.readers import ReadOptions, flat_image_reason, read_image
from xvertnet.io.shard_store import open_shard_for_writing
from xvertnet.provenance import sha256_file

log = logging.getLogger(__name__)

REJECT_COLUMNS = ("image_id", "path", "stage", "reason")


@dataclasses.dataclass
class IngestSummary:
    stored: int
    rejected: int


def entries_from_paths(paths) -> list[dict]:
    """Manifest-like entries for images given on the command line (id = file stem)."""
    entries, seen = [], set()
    for path in paths:
        path = Path(path)
        image_id = path.stem if path.stem not in seen else f"{path.stem}-{len(seen)}"
        seen.add(image_id)
        entries.append({"image_id": image_id, "resolved_path": str(path.resolve()), "split": "test", "source": "cli"})
    return entries


def read_mask(path, shape) -> np.ndarray:
    """A ground-truth mask image (any reader), as uint8 {0, 1}, checked against the image shape."""
    record = read_image(path, ReadOptions(min_side=1))
    mask = (record.pixels > 0.5).astype(np.uint8)
    if mask.shape != tuple(shape):
        raise InputImageError(path, f"mask shape {mask.shape} differs from the image shape {tuple(shape)}")
    return mask


def read_levels(path, shape) -> np.ndarray:
    """A vertebral level map (8-bit PNG, 0 = none, 1 = most superior level), as uint8, checked against the image shape."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P"):
                raise InputImageError(path, f"level map mode {image.mode}: expected an 8-bit single-channel PNG")
            levels = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise InputImageError(path, f"level map unreadable ({error})") from None
    if levels.shape != tuple(shape):
        raise InputImageError(path, f"level map shape {levels.shape} differs from the image shape {tuple(shape)}")
    return levels


def ingest_entries(
    entries: list[dict], out_path, rejects_path, *, options: ReadOptions | None = None, params: dict | None = None
) -> IngestSummary:
    """Ingest manifest entries (dicts with ``image_id`` and ``resolved_path``) into one shard.

    Writes ``out_path`` (HDF5, see :mod:`xvertnet.io.shard_store`) and ``rejects_path``
    (CSV: image_id, path, stage, reason), both atomically.
    """
    options = options or ReadOptions()
    params = {**dataclasses.asdict(options), **(params or {})}
    rejects = []
    with open_shard_for_writing(out_path, stage="ingest", params=params) as shard:
        for entry in entries:
            image_id, path = entry["image_id"], entry["resolved_path"]
            record = arrays = None  # one image in memory at a time: the previous one goes before the next is read
            try:
                record = read_image(path, options)
                flat = flat_image_reason(record.pixels)
                if flat:
                    raise InputImageError(path, f"{flat}, nothing to enhance")
                digest = sha256_file(path)
                arrays = {"image": record.pixels}
                mask_path = entry.get("resolved_mask_path") or ""
                if mask_path:
                    arrays["vertebra_mask"] = read_mask(mask_path, record.pixels.shape)
                levels_path = entry.get("resolved_levels_path") or ""
                if levels_path:
                    arrays["vertebra_levels"] = read_levels(levels_path, record.pixels.shape)
                for column, name, what in (
                    ("resolved_bone_path", "bone_target", "bone target"),
                    ("resolved_twin_path", "noise_twin", "noise twin"),
                ):
                    partner_path = entry.get(column) or ""
                    if (
                        not partner_path
                    ):  # a bone-emphasised target (demo.bone_emphasis) or a noise twin of the same view
                        continue
                    partner = read_image(partner_path, options).pixels
                    if partner.shape != record.pixels.shape:
                        raise InputImageError(
                            partner_path,
                            f"{what} shape {partner.shape} differs from the image shape {record.pixels.shape}",
                        )
                    arrays[name] = partner
            except (XvertnetError, OSError, ValueError, MemoryError) as error:
                reason = error.reason if isinstance(error, InputImageError) else f"{type(error).__name__}: {error}"
                reason = " ".join(str(reason).split())
                log.warning("rejected %s (%s): %s", image_id, path, reason)
                rejects.append({"image_id": image_id, "path": path, "stage": "ingest", "reason": reason})
                continue
            provenance = record.provenance() | {"sha256": digest}
            stated = entry.get("bit_depth")
            if stated not in (None, "") and int(stated) != record.detected_bits:
                note = f"manifest states {int(stated)} bits, data use {record.detected_bits}"
                log.warning("%s: %s", path, note)
                provenance["notes"] = [*provenance["notes"], note]
            shard.inputs[str(path)] = digest
            attrs = {
                "provenance": provenance,
                "split": str(entry.get("split", "")),
                "source": str(entry.get("source", "")),
                "mask_source": mask_path,
            }
            shard.add(image_id, arrays, attrs)
            log.info(
                "ingested %s: %s, %d bits, %s",
                image_id,
                record.format,
                record.detected_bits,
                "x".join(map(str, record.pixels.shape)),
            )
        stored = shard.count
    write_rejects(rejects, rejects_path)
    return IngestSummary(stored=stored, rejected=len(rejects))


def write_rejects(rejects: list[dict], path) -> None:
    """Write a rejects report (header only when nothing was rejected), atomically."""
    with atomic_path(path) as tmp:
        pd.DataFrame(rejects, columns=list(REJECT_COLUMNS)).to_csv(tmp, index=False)
