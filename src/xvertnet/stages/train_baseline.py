"""Rule ``train_baseline``: train a learned baseline (zerodce on the training crops, madmad on synthetic data)."""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.errors import XvertnetError
from xvertnet.settings import load_settings


def add_arguments(parser) -> None:
    parser.add_argument("data", nargs="*", type=Path, help="data shards with the training crops")
    parser.add_argument("--method", required=True)
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--settings", help="the method's config section baselines.<method> as JSON, or @file")
    parser.add_argument(
        "--manifests",
        help="the data sets' manifests {dataset: path} as JSON, or @file (LED reads the images' conditions)",
    )


def run(args) -> int:
    from xvertnet.methods import get_method

    method = get_method(args.method, load_settings(args.settings))
    manifests = load_settings(args.manifests) if getattr(args, "manifests", None) else None
    crops = method.training_data(args.data, manifests) if method.uses_training_crops else []
    if method.uses_training_crops and not crops:
        what = (
            f"training crops with a target '{method.training_target}'" if method.training_target else "training crops"
        )
        raise XvertnetError(
            f"{args.method}: no {what} in {len(args.data)} data shard(s)"
            + (
                "; bone-emphasised targets exist only for CT-derived demo data with demo.bone_emphasis > 0"
                if method.training_target == "B"
                else ""
            )
        )
    metadata = method.fit(crops, args.out_dir)
    logging.getLogger("xvertnet").info(
        "trained %s in %.1f s: loss %.4f -> %.4f",
        args.method,
        metadata["seconds"],
        metadata["first_loss"],
        metadata["last_loss"],
    )
    return 0
