"""Rule ``sr_table``: the super-resolution seed's tables on our data (SRCNN, VDSR, ZSSR by scale; iterative dehazing)."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import load_settings


def add_arguments(parser) -> None:
    parser.add_argument(
        "prep_shards",
        nargs="+",
        type=Path,
        help="prep shards of every data set (results/<dataset>/prep/<shard>.h5): the held-out images",
    )
    parser.add_argument(
        "--train-shards",
        nargs="*",
        type=Path,
        default=[],
        help="prep shards of the data sets models train on (not the enhance_only ones): the training crops",
    )
    parser.add_argument("--manifests", required=True, help="{dataset: manifest path} as JSON, or @file")
    parser.add_argument(
        "--settings", help="the config section baselines (srcnn, vdsr, vdsr-dehaze, zssr) as JSON, or @file"
    )
    parser.add_argument("--splits", nargs="+", default=["test"], help="held-out splits scored")
    parser.add_argument("--out-dir", required=True, type=Path)


def run(args) -> int:
    from xvertnet.errors import XvertnetError
    from xvertnet.io.datasets import read_manifest, shards_by_dataset
    from xvertnet.methods import training_crops
    from xvertnet.reporting.sr_table import held_out_rois, write_tables

    manifests = {dataset: read_manifest(path) for dataset, path in load_settings(args.manifests).items()}
    crops = training_crops(args.train_shards)
    rois = held_out_rois(shards_by_dataset(args.prep_shards, manifests), manifests, set(args.splits))
    if not crops or not rois:
        raise XvertnetError(
            f"sr_table: needs training crops and held-out clean or real ROIs, got {len(crops)} and {len(rois)}"
        )
    summary = write_tables(crops, rois, load_settings(args.settings), args.out_dir)
    logging.getLogger("xvertnet").info("sr_table: %s -> %s", summary, args.out_dir)
    return 0
