"""Rule ``download``: fetch, verify and unpack a public data set; write its manifest (:mod:`xvertnet.io.download`)."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import load_settings


def add_arguments(parser) -> None:
    parser.add_argument(
        "dataset", help="a name of the registry (montgomery, shenzhen, nih_chestxray14, jsrt, chexpert, ...)"
    )
    parser.add_argument("--dest", required=True, type=Path)
    parser.add_argument(
        "--settings", help="the data set's config entry as JSON (registry, archive, base_url, split_seed)"
    )
    parser.add_argument("--retries", type=int, default=5)
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from xvertnet.io.download import DownloadOptions, fetch_dataset

    entry = load_settings(args.settings)
    options = DownloadOptions(
        base_url=entry.get("base_url"),
        archive=entry.get("archive"),
        seed=entry.get("split_seed", 0),
        retries=args.retries,
        progress=not args.no_progress,
    )
    manifest = fetch_dataset(args.dataset, args.dest, options, registry_name=entry.get("registry"))
    logging.getLogger("xvertnet").info("%s: manifest of %d images in %s", args.dataset, len(manifest), args.dest)
    return 0
