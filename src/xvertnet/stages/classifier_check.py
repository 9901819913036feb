"""Rule ``classifier_check``: a ResNet-18 trained and tested on one method's enhanced images of a labelled data set.

See :mod:`xvertnet.evaluation.classifier_check`. Writes the method's summary row (accuracy, balanced
accuracy, ROC AUC with a bootstrap interval) and, beside it, one row per test image.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("enhanced", nargs="+", type=Path, help="the method's enhanced shards of the data set")
    parser.add_argument("--method", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument(
        "--labels", required=True, help="the data set's `labels` entry as JSON (path, columns, classes)"
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="summary CSV; <out stem>.per_image.csv is written beside it"
    )
    add_settings_argument(parser, "classifier_check")


def run(args) -> int:
    import pandas as pd

    from xvertnet.evaluation.classifier_check import (
        COLUMNS,
        ClassifierSettings,
        LabelSpec,
        classifier_rows,
        read_labels,
    )
    from xvertnet.io.atomic import atomic_path

    settings = ClassifierSettings.from_config(load_settings(args.settings))
    labels = read_labels(LabelSpec.from_config(json.loads(args.labels)))
    summary, per_image = classifier_rows(args.method, args.dataset, args.enhanced, labels, settings)
    with atomic_path(args.out.with_suffix(".per_image.csv")) as tmp:
        pd.DataFrame(per_image).to_csv(tmp, index=False)
    with atomic_path(args.out) as tmp:
        pd.DataFrame(summary, columns=list(COLUMNS)).to_csv(tmp, index=False)
    row = summary[0]
    logging.getLogger("xvertnet").info(
        "%s %s: accuracy %.3f, AUC %.3f [%.3f, %.3f] on %d test images",
        args.method,
        args.dataset,
        row["accuracy"],
        row["auc"],
        row["auc_low"],
        row["auc_high"],
        row["n_test"],
    )
    return 0
