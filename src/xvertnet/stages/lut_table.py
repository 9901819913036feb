"""Rule ``lut_table``: the GE seed's Table 1 on our data (:mod:`xvertnet.reporting.lut_table`), training every model of it."""

from __future__ import annotations

import logging
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("roi", nargs="+", type=Path, help="ROI shards: the canonical whole images of every split")
    parser.add_argument(
        "--splits", nargs="+", default=["test"], help="splits of the held-out images (training: split train)"
    )
    parser.add_argument("--csv", required=True, type=Path, help="one row per method, image and change; .md beside it")
    parser.add_argument(
        "--settings",
        help="the config section baselines.lut-mapping as JSON, or @file: the training budget "
        "(steps, batch_size, lr, seed) and the presentation-change ranges of every model",
    )
    parser.add_argument("--methods", nargs="+", help="a subset of the table's methods")


def run(args) -> int:
    from xvertnet.io.atomic import atomic_path
    from xvertnet.io.shard_store import iter_items
    from xvertnet.methods import get_method
    from xvertnet.reporting.docs_tables import write_run_table
    from xvertnet.reporting.lut_table import (
        MODELS,
        LutTableSettings,
        common_shape,
        evaluate,
        table_markdown,
        train_model,
    )
    from xvertnet.settings import load_settings

    log = logging.getLogger("xvertnet")
    method = get_method("lut-mapping", load_settings(args.settings))  # its defaults are the one source of these values
    params = method.params
    settings = LutTableSettings(
        steps=params["steps"], batch_size=params["batch_size"], lr=params["lr"], seed=params["seed"]
    )
    change = method.presentation_change()
    # Trained on the training split's whole canonical images (the paper trained on whole radiographs), scored on the
    # held-out splits' ones: the same kind of image on both sides.
    whole = [
        (attrs.get("split", ""), image_id, arrays["canonical"])
        for shard in args.roi
        for image_id, arrays, attrs in iter_items(shard, names=["canonical"])
    ]
    crops = common_shape([image for split, _, image in whole if split == "train"])
    images = {image_id: image for split, image_id, image in whole if split in args.splits}
    models, seconds = {}, {}
    for name in args.methods or list(MODELS):
        models[name], seconds[name] = train_model(name, crops, settings, change)
        log.info("lut_table: trained %s on %d images of %s in %.1f s", name, len(crops), crops[0].shape, seconds[name])
    rows = evaluate(models, images, settings, change)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.csv) as tmp:
        rows.to_csv(tmp, index=False)
    write_run_table(args.csv.with_suffix(".md"), "xvertnet lut-table", table_markdown(rows, seconds))
    log.info("lut_table: %d images x %d changes -> %s", len(images), settings.changes_per_image, args.csv)
    return 0
