"""Rule ``metrics_shard``: every measure of one method's enhanced evaluation ROIs of one shard (:mod:`xvertnet.evaluation.metrics_shard`)."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("enhanced", type=Path, help="an enhanced shard (it records its method and data set)")
    parser.add_argument("--roi", required=True, type=Path, help="the ROI shard it was enhanced from")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument(
        "--splits", nargs="*", help="measure only images of these splits (default: every image of the shard)"
    )
    add_settings_argument(parser, "metrics")


def run(args) -> int:
    from xvertnet.evaluation.metrics_shard import metrics_shard
    from xvertnet.metrics import MetricParams

    count = metrics_shard(
        args.enhanced,
        args.roi,
        args.out,
        params=MetricParams.from_config(load_settings(args.settings)),
        splits=args.splits,
    )
    logging.getLogger("xvertnet").info("metrics: %d ROIs of %s -> %s", count, args.enhanced, args.out)
    return 0
