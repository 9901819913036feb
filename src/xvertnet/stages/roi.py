"""Rule ``roi``: canonical scale, spine localisation, training and evaluation ROIs (:mod:`xvertnet.preprocessing.roi`)."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("ingest", type=Path, help="ingest shard (HDF5)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--qc-dir", required=True, type=Path)
    parser.add_argument("--rejects", required=True, type=Path)
    add_settings_argument(parser, "roi")


def run(args) -> int:
    from xvertnet.preprocessing.roi import roi_shard
    from xvertnet.preprocessing.spine_location import RoiSettings

    stored, rejected = roi_shard(
        args.ingest, args.out, args.qc_dir, RoiSettings.from_config(load_settings(args.settings)), args.rejects
    )
    logging.getLogger("xvertnet").info("roi: %d images, %d rejected -> %s", stored, rejected, args.out)
    return 0
