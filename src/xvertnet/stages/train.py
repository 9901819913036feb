"""Rule ``train``: train one XVertNet iteration on data shards (:mod:`xvertnet.model.training`)."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("data", nargs="+", type=Path, help="data shards (prep for iteration 1, refine of t-1 after)")
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--iteration", type=int, default=1)
    add_settings_argument(parser, "train")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from xvertnet.model.training import TrainConfig, train_iteration

    config = TrainConfig.from_config(load_settings(args.settings))
    summary = train_iteration(args.data, args.out_dir, config, iteration=args.iteration, progress=not args.no_progress)
    logging.getLogger("xvertnet").info(
        "train: iteration %d, %d epochs, best epoch %d (val %.5f), %.0f s -> %s",
        args.iteration,
        summary["epochs"],
        summary["best_epoch"],
        summary["best_val_loss"],
        summary["training_seconds"],
        args.out_dir,
    )
    return 0
