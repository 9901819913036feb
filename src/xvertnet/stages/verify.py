"""Command ``xvertnet verify [FOLDER ...]``: find damaged and stale cached outputs.

Walks every HDF5 shard, model folder, recorded table and PNG under the folders (default ``results``):

* **damaged**: a shard whose content differs from the sha256 recorded beside it when it was
  written (``<shard>.sha256``), that does not open, or with an array whose chunk checksum
  (Fletcher-32, written with every array) or compression fails on reading; a model folder whose ``model.pt`` does not
  match the sha256 in its ``model.json``;
* **damaged** too: any other file whose content differs from the ``<file>.sha256`` recorded beside it
  when it was written (the evaluation's tables), and a PNG with a chunk whose CRC fails or that
  ends early;
* **stale**: an input whose sha256, recorded by the shard that read it (``inputs_sha256``), differs
  from the file there now: the input was rebuilt, replaced or damaged after this output was made,
  so the output no longer follows from it (a half-synchronised copy on shared storage looks the same).

Each finding is one line naming the file, the item and the command that rebuilds it; the exit code
is 1 when anything was found, else 0. Shards written before checksums existed are read in full
(compression errors are still found) and said to carry no checksums.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument(
        "folders", nargs="*", type=Path, default=[Path("results")], help="folders to walk (default: results)"
    )


def check_shard(path: Path, hashes: dict) -> tuple[list[str], bool]:
    """Findings for one shard, and whether its arrays carry checksums."""
    import h5py

    from xvertnet.errors import InputFileError
    from xvertnet.io.content_hash import content_hash_path, recorded_content_hash
    from xvertnet.io.shard_store import damaged_reason, decode_attr, read_shard
    from xvertnet.provenance import sha256_file

    findings, checksummed = [], True
    recorded = recorded_content_hash(path)
    changed = recorded is not None and sha256_file(path) != recorded
    try:
        handle = read_shard(path)
    except InputFileError as error:
        return [f"damaged: {error}"], True
    with handle:
        arrays = []
        handle.visititems(lambda name, obj: arrays.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
        for name, dataset in arrays:
            checksummed &= bool(dataset.fletcher32) or dataset.ndim == 0
            try:
                dataset[()]
            except OSError as error:
                findings.append(f"damaged: {path}: {damaged_reason(name.removeprefix('items/'), error, path)}")
        inputs = decode_attr(handle.attrs.get("inputs_sha256", "{}")) or {}
    if changed and not findings:  # damage the arrays' checksums do not cover (attributes, scalars, free space)
        findings.append(
            f"damaged: {path}: its content differs from the sha256 recorded beside it when it was written "
            f"({content_hash_path(path).name}); rebuild it: snakemake --force {path}"
        )
    for source, recorded in inputs.items():
        source_path = Path(source)
        if not source_path.is_file():
            continue  # an input outside this tree (a user's images moved) is not this check's business
        if source_path not in hashes:
            hashes[source_path] = sha256_file(source_path)
        if hashes[source_path] != recorded:
            findings.append(
                f"stale: {path}: its input {source} changed after it was written (sha256 {recorded[:12]}... "
                f"recorded, {hashes[source_path][:12]}... now); rebuild it: snakemake --force {path}"
            )
    return findings, checksummed


def check_model(folder: Path) -> list[str]:
    from xvertnet.provenance import sha256_file

    metadata_path, weights = folder / "model.json", folder / "model.pt"
    try:
        recorded = json.loads(metadata_path.read_text()).get("model_sha256")
    except (OSError, ValueError) as error:
        return [f"damaged: {metadata_path}: unreadable ({error})"]
    if not weights.is_file():
        return [f"damaged: {folder}: model.json without model.pt"]
    if recorded and sha256_file(weights) != recorded:
        return [
            f"damaged: {weights}: sha256 differs from model.json (a damaged, partial or swapped copy); retrain or "
            f"republish it: snakemake --force {metadata_path}"
        ]
    return []


def check_recorded(path: Path) -> list[str]:
    """A file written with its sha256 beside it (not a shard): damaged when they differ."""
    from xvertnet.io.content_hash import content_hash_path, recorded_content_hash
    from xvertnet.provenance import sha256_file

    recorded = recorded_content_hash(path)
    if recorded is None or sha256_file(path) == recorded:
        return []
    return [
        f"damaged: {path}: its content differs from the sha256 recorded beside it when it was written "
        f"({content_hash_path(path).name}); rebuild it: snakemake --force {path}"
    ]


def check_png(path: Path) -> list[str]:
    """A PNG whose chunks' CRCs fail, or that is cut short, is damaged (PIL reads every chunk without decoding)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as error:  # noqa: BLE001 - PIL raises SyntaxError, OSError, ValueError for a broken file
        return [
            f"damaged: {path}: not a readable PNG ({' '.join(str(error).split()) or type(error).__name__}); "
            f"rebuild it: snakemake --force {path}"
        ]
    return []


def run(args) -> int:
    start = time.perf_counter()
    findings, unchecked, shards, models, recorded, pngs = [], [], 0, 0, 0, 0
    hashes: dict = {}
    for folder in args.folders:
        if not folder.exists():
            findings.append(f"missing: {folder}: no such folder")
            continue
        for path in sorted(folder.rglob("*.h5")):
            shards += 1
            found, checksummed = check_shard(path, hashes)
            findings += found
            if not checksummed:
                unchecked.append(path)
        for metadata in sorted(folder.rglob("model.json")):
            models += 1
            findings += check_model(metadata.parent)
        for sidecar in sorted(folder.rglob("*.sha256")):
            target = sidecar.with_suffix("")
            if target.suffix != ".h5" and target.is_file():
                recorded += 1
                findings += check_recorded(target)
        for image in sorted(folder.rglob("*.png")):
            pngs += 1
            findings += check_png(image)
    for line in findings:
        print(line)
    if unchecked:
        log.info(
            "%d shard(s) were written without checksums (an older version): read in full, compression errors only",
            len(unchecked),
        )
    log.info(
        "verified %d shard(s), %d model(s), %d recorded table(s) and %d PNG(s) in %.1f s: %d finding(s)",
        shards,
        models,
        recorded,
        pngs,
        time.perf_counter() - start,
        len(findings),
    )
    return 1 if findings else 0
