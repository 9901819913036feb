"""Rule ``tables``: statistics, comparison tables (csv, md, tex), box plots and a visual panel."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.io.content_hash import checked_digest
from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("per_roi", type=Path)
    parser.add_argument(
        "--csv", required=True, type=Path, help="comparison table (CSV); .md and .tex are written beside it"
    )
    parser.add_argument("--boxplots", required=True, type=Path)
    parser.add_argument("--panel", required=True, type=Path)
    parser.add_argument("--whole-panel", type=Path, help="whole images of every method at one window (PNG)")
    parser.add_argument("--enhanced", nargs="*", type=Path, default=[], help="enhanced shards for the panel")
    parser.add_argument(
        "--manifests", default="{}", help="JSON object data set -> manifest CSV (the panel's choice of images)"
    )
    add_settings_argument(parser, "metrics")


def run(args) -> int:
    import pandas as pd

    from xvertnet.errors import XvertnetError
    from xvertnet.evaluation.metrics_shard import shards_by_method
    from xvertnet.evaluation.stats import (
        TableSettings,
        compare,
        ordered_methods,
        reference_method,
        undefined_measures,
        write_comparison_tables,
    )
    from xvertnet.reporting.report_figures import box_plots, panel_image_ids, visual_panel, whole_image_panel

    settings = TableSettings.from_config(load_settings(args.settings))
    splits = tuple(settings.table_splits)
    try:
        checked_digest(args.per_roi)  # a damaged table is one line, not a wrong one
        per_roi = pd.read_csv(args.per_roi)
    except pd.errors.EmptyDataError:
        per_roi = pd.DataFrame(columns=["split"])
    if not per_roi["split"].isin(splits).any():
        raise XvertnetError(
            f"{args.per_roi}: no measured ROI in splits {list(splits)} (metrics.table_splits); "
            "put images in those splits in the manifest"
        )
    reference = reference_method(per_roi["method"].unique())
    statistics = compare(per_roi, reference=reference, splits=splits)
    stem = args.csv.with_suffix("")
    crops = (
        sorted(per_roi.loc[per_roi["protocol"].eq("crops"), "method"].unique()) if "protocol" in per_roi.columns else []
    )
    from xvertnet.provenance import made_by

    appendix = ("", "")
    if settings.detectability_table:
        from xvertnet.evaluation.detectability_join import (
            block_html,
            block_markdown,
            detectability_block,
            pairs_html,
            read_detectability,
        )

        methods = ordered_methods(statistics["method"])
        block = detectability_block(read_detectability(settings.detectability_table), methods)
        pairs = Path(settings.detectability_table).with_name("pairs.png")
        appendix = (
            block_markdown(block, methods, settings.detectability_table),
            block_html(block, methods) + pairs_html(pairs),
        )
    write_comparison_tables(
        statistics,
        stem,
        reference=reference,
        undefined=undefined_measures(per_roi, splits),
        crops=crops,
        header=made_by("xvertnet tables"),
        appendix=appendix,
    )
    box_plots(per_roi, args.boxplots, splits=splits)
    manifests = {
        dataset: pd.read_csv(path, keep_default_na=False) for dataset, path in load_settings(args.manifests).items()
    }
    image_ids = panel_image_ids(per_roi, manifests, splits=splits, count=settings.panel_images)
    shown = per_roi[per_roi["split"].isin(splits)]
    visual_panel(shards_by_method(args.enhanced), args.panel, image_ids=image_ids, values=shown)
    if args.whole_panel:
        whole_image_panel(shards_by_method(args.enhanced), args.whole_panel, image_ids=image_ids, values=shown)
    logging.getLogger("xvertnet").info("tables -> %s.{csv,md,tex}", stem)
    return 0
