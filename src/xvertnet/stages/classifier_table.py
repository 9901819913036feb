"""Rule ``classifier_table``: the classifier check of every method and labelled data set in one table (csv, md)."""

from __future__ import annotations

import logging
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("summaries", nargs="+", type=Path, help="the classifier_check summary CSVs")
    parser.add_argument("--csv", required=True, type=Path, help="table (CSV); the .md is written beside it")


def run(args) -> int:
    import pandas as pd

    from xvertnet.evaluation.classifier_check import classifier_markdown
    from xvertnet.io.atomic import atomic_path

    table = pd.concat([pd.read_csv(path) for path in args.summaries], ignore_index=True)
    with atomic_path(args.csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(args.csv.with_suffix(".md")) as tmp:
        tmp.write_text(classifier_markdown(table))
    logging.getLogger("xvertnet").info("classifier check: %d rows -> %s", len(table), args.csv)
    return 0
