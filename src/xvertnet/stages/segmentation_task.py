"""Rule ``segmentation_task``: train a vertebra segmenter on one method's enhanced training ROIs, score the rest.

See :mod:`xvertnet.evaluation.segmentation_task`. Writes one row per scored ROI (Dice, HD95, mean surface
distance); ``aggregate_metrics`` merges the rows into ``per_roi.csv``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("enhanced", nargs="+", type=Path, help="the method's enhanced shards (every data set)")
    parser.add_argument(
        "--roi", nargs="+", required=True, type=Path, help="the ROI shard of each enhanced shard, in the same order"
    )
    parser.add_argument("--method", required=True)
    parser.add_argument("--out", required=True, type=Path, help="per-ROI CSV")
    add_settings_argument(parser, "segmentation_task")


def run(args) -> int:
    import pandas as pd

    from xvertnet.evaluation.segmentation_task import COLUMNS, SegmentationTaskSettings, segmentation_rows
    from xvertnet.io.atomic import atomic_path

    settings = SegmentationTaskSettings.from_config(load_settings(args.settings))
    rows = segmentation_rows(args.method, args.enhanced, args.roi, settings)
    with atomic_path(args.out) as tmp:
        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(tmp, index=False)
    logging.getLogger("xvertnet").info("%s: segmentation task, %d ROIs scored -> %s", args.method, len(rows), args.out)
    return 0
