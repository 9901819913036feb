"""Rule ``roi_index``: one CSV row per image over all ROI shards, and merged rejects (:func:`xvertnet.preprocessing.roi.write_roi_index`)."""

from __future__ import annotations

import logging
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("roi_shards", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--rejects-in", nargs="*", type=Path, default=[])
    parser.add_argument("--rejects-out", required=True, type=Path)


def run(args) -> int:
    from xvertnet.preprocessing.roi import write_roi_index

    count = write_roi_index(args.roi_shards, args.out, rejects_in=args.rejects_in, rejects_out=args.rejects_out)
    logging.getLogger("xvertnet").info("roi index: %d images -> %s", count, args.out)
    return 0
