"""Rule ``aggregate_metrics``: the long per-ROI table with ratios and consistency measures (:func:`xvertnet.evaluation.metrics_shard.aggregate`)."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import load_settings


def add_arguments(parser) -> None:
    parser.add_argument("metric_csvs", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument(
        "--enhanced",
        nargs="*",
        type=Path,
        default=[],
        help="the enhanced shards (each records its method and data set)",
    )
    parser.add_argument(
        "--segmentation", nargs="*", type=Path, default=[], help="the segmentation task's per-ROI CSVs (one per method)"
    )
    parser.add_argument("--manifests", help="JSON object data set -> manifest CSV (view and condition of DRRs)")


def run(args) -> int:
    from xvertnet.evaluation.metrics_shard import aggregate, shards_by_method

    enhanced = shards_by_method(args.enhanced, key=("dataset", "method"))
    table = aggregate(
        args.metric_csvs,
        args.out,
        enhanced=enhanced,
        manifests=load_settings(args.manifests),
        segmentation_csvs=args.segmentation,
    )
    logging.getLogger("xvertnet").info("per-ROI table: %d rows -> %s", len(table), args.out)
    return 0
