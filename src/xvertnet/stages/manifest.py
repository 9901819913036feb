"""Command ``xvertnet manifest``: a manifest CSV of every radiograph in a folder, format and bit depth detected.

The manifest is what a data set entry of the config points at (docs/own-data.md ("Your own data")).
Unreadable files are listed with their reason and left out.
"""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("folder", type=Path, help="a folder of images (searched recursively)")
    parser.add_argument("--out", type=Path, help="manifest CSV to write (default: FOLDER/manifest.csv)")
    parser.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test"],
        help="split of every image (test: enhanced and measured; train: trained on)",
    )
    parser.add_argument("--source", help="the 'source' column (default: the folder's name)")
    add_settings_argument(parser, "ingest")


def run(args) -> int:
    from xvertnet.io.datasets import manifest_from_folder
    from xvertnet.io.readers import ReadOptions

    out = args.out or args.folder / "manifest.csv"
    manifest, rejects = manifest_from_folder(
        args.folder,
        out,
        split=args.split,
        source=args.source,
        options=ReadOptions.from_config(load_settings(args.settings)),
    )
    log = logging.getLogger("xvertnet")
    for reject in rejects:
        log.warning("skipped %s: %s", reject["path"], reject["reason"])
    depths = ", ".join(
        f"{bits} bit x {count}" for bits, count in manifest["bit_depth"].value_counts().sort_index().items()
    )
    log.info("manifest: %d images (%s), %d skipped -> %s", len(manifest), depths, len(rejects), out)
    return 0
