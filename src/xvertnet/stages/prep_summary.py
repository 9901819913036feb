"""Rule ``prep_summary``: one CSV row per image and ROI over all prep shards (:func:`xvertnet.preprocessing.prep_shard.write_prep_summary`)."""

from __future__ import annotations

import logging
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("prep_shards", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)


def run(args) -> int:
    from xvertnet.preprocessing.prep_shard import write_prep_summary

    count = write_prep_summary(args.prep_shards, args.out)
    logging.getLogger("xvertnet").info("prep summary: %d crops -> %s", count, args.out)
    return 0
