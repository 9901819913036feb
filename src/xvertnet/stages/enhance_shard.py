"""Rule ``enhance_shard``: any method on the evaluation ROIs and canonical whole images of a ROI shard.

Every method goes through :func:`enhance_rois_shard`, so the metrics stage treats them all
alike. The enhanced shard records its method, the name it is compared under and its data
set as file attributes (read by ``aggregate-metrics``, ``tables`` and ``study-report``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from ..errors import XvertnetError
from ..provenance import sha256_file
from ..settings import load_settings
from ..shard_store import EVAL_ROIS, iter_items, open_shard_for_writing
from ..writers import write_png16

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--method", required=True, help="a registered method: xvertnet-chain, xvertnet-internal, original, clahe, farbman, ...")
    parser.add_argument("--name", help="the name it is compared under (default: the method)")
    parser.add_argument("--dataset", default="", help="the data set the shard belongs to (recorded)")
    parser.add_argument("--roi", required=True, type=Path, help="ROI shard (HDF5)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--png-dir", required=True, type=Path)
    parser.add_argument("--settings", help="the method's settings as JSON, or @file (see xvertnet.methods); keys `before` and "
                                           "`then` (lists of {method, settings}) compose it with untrained methods")
    parser.add_argument("--model-dir", type=Path, help="a trained baseline's model directory")
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=["train", "val", "test"])
    parser.add_argument("--whole", action=argparse.BooleanOptionalAction, default=True, help="also enhance the canonical whole image")



def enhance_rois_shard(method, roi_shard, out_path, png_dir, *, name: str, dataset: str = "", splits=("val", "test"),
                       whole: bool = True) -> int:
    """``method`` (a :class:`xvertnet.methods.Method`) on the evaluation ROIs and whole images of ``splits``.

    Writes ``out_path`` (HDF5: per image ``eval_upper``, ``eval_lower`` and optionally
    ``whole``) and 16-bit PNGs into ``png_dir``.
    """
    png_dir = Path(png_dir)
    png_dir.mkdir(parents=True, exist_ok=True)
    whole = whole and method.whole_images
    names = [*EVAL_ROIS, "canonical"] if whole else list(EVAL_ROIS)
    params = {"method": name, "kind": method.name, "dataset": dataset, "splits": list(splits), "params": method.describe()}
    with open_shard_for_writing(out_path, stage="enhance", params=params) as shard:
        shard.inputs[str(roi_shard)] = sha256_file(roi_shard)
        for image_id, arrays, attrs in iter_items(roi_shard, names=names):
            if attrs.get("split", "") not in splits:
                continue
            fitted, extra = method.for_image(image_id)
            stored = {roi: np.clip(fitted(arrays[roi]), 0.0, 1.0).astype(np.float32) for roi in EVAL_ROIS}
            if whole:
                stored["whole"] = np.clip(fitted.enhance_whole(arrays["canonical"]), 0.0, 1.0).astype(np.float32)
            for part, image in stored.items():
                if image.shape != (arrays["canonical"].shape if part == "whole" else arrays[part].shape):
                    raise XvertnetError(f"{name} changed the shape of {image_id}/{part}")
                write_png16(png_dir / f"{image_id}_{part}.png", image)
            shard.add(image_id, stored, {"split": attrs.get("split", ""), "boxes": attrs.get("boxes", {}), **extra})
            log.info("%s enhanced %s", name, image_id)
        count = shard.count
    return count


def run(args) -> int:
    from ..methods import get_method
    from ..methods.composite import compose, split_steps

    settings, steps = split_steps(load_settings(args.settings))
    method = get_method(args.method, settings)
    if method.trainable:
        if not args.model_dir:
            raise XvertnetError(f"{args.method} is trained: give --model-dir")
        method.load(args.model_dir)
    method = compose(method, steps)  # `before`/`then` of an XVertNet configuration (xvertnet.methods.composite)
    name = args.name or args.method
    count = enhance_rois_shard(method, args.roi, args.out, args.png_dir, name=name, dataset=args.dataset, splits=tuple(args.splits),
                               whole=args.whole)
    log.info("enhance %s: %d images -> %s", name, count, args.out)
    return 0
