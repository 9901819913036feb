"""Rule ``prep``: WLS, Xp and HFC (Eqs. 1-6) of every crop of a ROI shard (:mod:`xvertnet.preprocessing.prep_shard`)."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("roi", type=Path, help="ROI shard (HDF5)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--figure-dir", type=Path, help="write a Fig. 1-style panel per image here")
    add_settings_argument(parser, "prep")


def run(args) -> int:
    from xvertnet.preprocessing.prep_shard import prep_shard
    from xvertnet.preprocessing.preprocess import PrepParams

    count = prep_shard(
        args.roi, args.out, PrepParams.from_config(load_settings(args.settings)), figure_dir=args.figure_dir
    )
    logging.getLogger("xvertnet").info("prep: %d images -> %s", count, args.out)
    return 0
