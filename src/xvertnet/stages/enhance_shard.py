"""Rule ``enhance_shard``: any method on the canonical whole images of a ROI shard, evaluation ROIs cut from its output.

Every method goes through :func:`enhance_rois_shard`, so the metrics stage treats them all
alike. The enhanced shard records its method, the name it is compared under and its data
set as file attributes (read by ``aggregate-metrics``, ``tables`` and ``study-report``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from xvertnet.errors import XvertnetError
from xvertnet.io.content_hash import checked_digest
from xvertnet.io.shard_store import EVAL_ROIS, iter_items, open_shard_for_writing
from xvertnet.io.writers import write_png16
from xvertnet.settings import load_settings

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument(
        "--method",
        required=True,
        help="a registered method: xvertnet-chain, xvertnet-internal, original, clahe, farbman, ...",
    )
    parser.add_argument("--name", help="the name it is compared under (default: the method)")
    parser.add_argument("--dataset", default="", help="the data set the shard belongs to (recorded)")
    parser.add_argument("--roi", required=True, type=Path, help="ROI shard (HDF5)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--png-dir", required=True, type=Path)
    parser.add_argument(
        "--settings",
        help="the method's settings as JSON, or @file (see xvertnet.methods); keys `before` and "
        "`then` (lists of {method, settings}) compose it with untrained methods",
    )
    parser.add_argument("--model-dir", type=Path, help="a trained baseline's model directory")
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=["train", "val", "test"])
    parser.add_argument(
        "--whole", action=argparse.BooleanOptionalAction, default=True, help="also enhance the canonical whole image"
    )


def enhance_rois_shard(
    method, roi_shard, out_path, png_dir, *, name: str, dataset: str = "", splits=("val", "test"), whole: bool = True
) -> int:
    """``method`` (a :class:`xvertnet.methods.Method`) on the images of ``splits``, as a user runs it.

    Whole-image protocol: the method enhances the canonical whole image, and the evaluation ROIs
    are cut from its output at the boxes of the ROI stage, so every method sees the anatomy,
    the dynamic range and the tiles it would see on a radiograph. A method that can only work on
    crops (``whole_images`` False: one network trained per image) enhances each evaluation ROI on
    its own, and the shard records ``protocol: crops`` so the tables can say so. Where the ROI
    shard holds a noise twin (``canonical_twin``), it is enhanced the same way (``whole_twin``,
    ``eval_*_twin``) for the noise measures.

    Writes ``out_path`` (HDF5: per image ``eval_upper``, ``eval_lower``, ``whole`` and the twins) and
    16-bit PNGs of the ROIs and the whole image into ``png_dir``.
    """
    from xvertnet.preprocessing.spine_location import crop

    png_dir = Path(png_dir)
    png_dir.mkdir(parents=True, exist_ok=True)
    whole = whole and method.whole_images
    protocol = "whole image" if whole else "crops"
    params = {
        "method": name,
        "kind": method.name,
        "dataset": dataset,
        "splits": list(splits),
        "protocol": protocol,
        "params": method.describe(),
    }
    with open_shard_for_writing(out_path, stage="enhance", params=params) as shard:
        shard.inputs[str(roi_shard)] = checked_digest(roi_shard)
        for image_id, arrays, attrs in iter_items(
            roi_shard, names=[*EVAL_ROIS, "canonical"], optional=["canonical_twin"]
        ):
            if attrs.get("split", "") not in splits:
                continue
            fitted, extra = method.for_image(image_id)
            boxes = attrs.get("boxes", {})
            stored = {}
            for suffix, source in (("", "canonical"), ("_twin", "canonical_twin")):
                if source not in arrays:
                    continue
                if whole:
                    enhanced = np.clip(fitted.enhance_whole(arrays[source]), 0.0, 1.0).astype(np.float32)
                    if enhanced.shape != arrays[source].shape:
                        raise XvertnetError(f"{name} changed the shape of {image_id}/{source}")
                    stored[f"whole{suffix}"] = enhanced
                    stored.update({f"{roi}{suffix}": crop(enhanced, boxes[roi]) for roi in EVAL_ROIS})
                else:
                    for roi in EVAL_ROIS:
                        part = arrays[roi] if not suffix else crop(arrays[source], boxes[roi])
                        stored[f"{roi}{suffix}"] = np.clip(fitted(part), 0.0, 1.0).astype(np.float32)
            for part in (*EVAL_ROIS, "whole"):
                if part in stored:
                    write_png16(png_dir / f"{image_id}_{part}.png", stored[part])
            shard.add(
                image_id, stored, {"split": attrs.get("split", ""), "boxes": boxes, "protocol": protocol, **extra}
            )
            log.info("%s enhanced %s (%s)", name, image_id, protocol)
        count = shard.count
    return count


def run(args) -> int:
    from xvertnet.methods import get_method
    from xvertnet.methods.composite import compose, split_steps

    settings, steps = split_steps(load_settings(args.settings))
    method = get_method(args.method, settings)
    if method.trainable:
        if not args.model_dir:
            raise XvertnetError(f"{args.method} is trained: give --model-dir")
        method.load(args.model_dir)
    method = compose(method, steps)  # `before`/`then` of an XVertNet configuration (xvertnet.methods.composite)
    name = args.name or args.method
    count = enhance_rois_shard(
        method,
        args.roi,
        args.out,
        args.png_dir,
        name=name,
        dataset=args.dataset,
        splits=tuple(args.splits),
        whole=args.whole,
    )
    log.info("enhance %s: %d images -> %s", name, count, args.out)
    return 0
