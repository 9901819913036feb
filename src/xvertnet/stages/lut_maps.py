"""Rule ``lut_maps``: the LUT mapping's four interpretable maps beside input and output, per test image."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import load_settings


def add_arguments(parser) -> None:
    parser.add_argument("roi_shards", nargs="+", type=Path, help="ROI shards (their canonical whole images)")
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--settings", help="the method's config section baselines.lut-mapping as JSON, or @file")
    parser.add_argument("--splits", nargs="+", default=["test"])


def run(args) -> int:
    from xvertnet.io.shard_store import iter_items
    from xvertnet.methods import get_method
    from xvertnet.reporting.report_figures import lut_maps_figure

    method = get_method("lut-mapping", load_settings(args.settings))
    method.load(args.model_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for shard in args.roi_shards:
        for image_id, arrays, attrs in iter_items(shard, names=["canonical"]):
            if attrs.get("split", "") not in args.splits:
                continue
            output, maps = method.maps(arrays["canonical"])
            lut_maps_figure(
                arrays["canonical"], output, maps, args.out_dir / f"{image_id}.png", title=f"{image_id}: LUT mapping"
            )
            count += 1
    logging.getLogger("xvertnet").info("lut_maps: %d figures -> %s", count, args.out_dir)
    return 0
