"""Rule ``ingest``: read images, normalise bit depth, write one HDF5 shard (:mod:`xvertnet.io.ingest`)."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.errors import XvertnetError
from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("images", nargs="*", type=Path, help="image files (or use --manifest)")
    parser.add_argument("--manifest", type=Path, help="a (shard) manifest CSV")
    parser.add_argument("--out", required=True, type=Path, help="HDF5 file to write")
    parser.add_argument("--rejects", required=True, type=Path, help="CSV of rejected images and reasons")
    add_settings_argument(parser, "ingest")


def run(args) -> int:
    from xvertnet.io.datasets import read_manifest
    from xvertnet.io.ingest import entries_from_paths, ingest_entries
    from xvertnet.io.readers import ReadOptions

    if bool(args.images) == bool(args.manifest):
        raise XvertnetError("give either image paths or --manifest, not both or neither")
    entries = read_manifest(args.manifest).to_dict("records") if args.manifest else entries_from_paths(args.images)
    summary = ingest_entries(
        entries, args.out, args.rejects, options=ReadOptions.from_config(load_settings(args.settings))
    )
    logging.getLogger("xvertnet").info(
        "ingest: %d stored, %d rejected -> %s", summary.stored, summary.rejected, args.out
    )
    return 0
