"""Rule ``gallery``: the static results gallery of a run (:func:`xvertnet.reporting.gallery.write_gallery`)."""

from __future__ import annotations

from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("enhanced", nargs="+", type=Path, help="every method's enhanced shards")
    parser.add_argument("--per-roi", required=True, type=Path, help="the per-ROI table (CNR and edge ratios per tile)")
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument(
        "--manifests", default="{}", help="JSON object data set -> manifest CSV (patient, split, condition)"
    )
    add_settings_argument(parser, "metrics")


def run(args) -> int:
    import pandas as pd

    from xvertnet.evaluation.metrics_shard import shards_by_method
    from xvertnet.evaluation.stats import TableSettings
    from xvertnet.reporting.gallery import write_gallery

    settings = TableSettings.from_config(load_settings(args.settings))
    manifests = {
        dataset: pd.read_csv(path, keep_default_na=False) for dataset, path in load_settings(args.manifests).items()
    }
    try:
        per_roi = pd.read_csv(args.per_roi)
    except pd.errors.EmptyDataError:
        per_roi = None
    write_gallery(
        shards_by_method(args.enhanced),
        args.out_dir,
        manifests=manifests,
        per_roi=per_roi,
        count=settings.gallery_images,
    )
    return 0
