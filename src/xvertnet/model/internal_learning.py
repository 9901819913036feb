"""Internal learning: XVertNet trained on the one image it then enhances.

The journal paper argues for "harnessing overfitting" as internal-learning methods do
(ZSSR, deep image prior). In this mode nothing is learnt from other images: for each image
to enhance, iteration 1 trains on that image's own training crops (its prep items),
iteration t + 1 on iteration t's refined crops (Eq. 7), with early stopping on the training
loss; the resulting chain then enhances the image's evaluation ROIs and whole image. The
models live in a temporary folder; their training record is stored with the enhanced image.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from xvertnet.errors import InvalidValueError
from xvertnet.io.shard_store import TRAIN_ROIS, file_attrs, open_shard_for_writing, read_item
from xvertnet.model.inference import Chain, refine_shard
from xvertnet.model.training import TrainConfig, train_iteration
from xvertnet.preprocessing.prep_shard import STORED

log = logging.getLogger(__name__)

#: The split the one image's crops are given in its private data shard.
INTERNAL_SPLIT = "internal"


def write_image_shard(prep_shard, image_id: str, out_path) -> None:
    """A data shard holding only ``image_id``'s training crops, in the split ``INTERNAL_SPLIT``."""
    names = [f"{roi}/{key}" for roi in TRAIN_ROIS for key in STORED]
    arrays, attrs = read_item(prep_shard, image_id, names=names)
    source = file_attrs(prep_shard)
    kept = {key: attrs[key] for key in ("source", "boxes", "scale") if key in attrs}
    with open_shard_for_writing(
        out_path, stage="prep", params=source.get("params", {}), upstream=source.get("upstream", {})
    ) as shard:
        shard.add(image_id, arrays, {**kept, "split": INTERNAL_SPLIT})


def train_internal_chain(
    prep_shard, image_id: str, config: TrainConfig, iterations: int, work_dir, *, device: str = "auto"
) -> tuple[Chain, dict]:
    """Train iterations 1..``iterations`` on one image; return the chain and a training record."""
    if iterations < 1:
        raise InvalidValueError(f"internal learning needs at least one iteration, got {iterations}")
    work_dir = Path(work_dir)
    data = work_dir / "iter0.h5"
    write_image_shard(prep_shard, image_id, data)
    start = time.perf_counter()
    model_dirs, record = [], {"image_id": image_id, "iterations": []}
    for iteration in range(1, iterations + 1):
        out_dir = work_dir / f"iter{iteration}"
        summary = train_iteration(
            [data], out_dir, config, iteration=iteration, progress=False, splits=(INTERNAL_SPLIT, None)
        )
        record["iterations"].append(
            {key: summary[key] for key in ("epochs", "best_epoch", "best_val_loss", "training_seconds")}
        )
        model_dirs.append(out_dir)
        if iteration < iterations:
            refined = work_dir / f"iter{iteration}.h5"
            refine_shard(out_dir, data, refined, device=device)
            data = refined
    record["seconds"] = time.perf_counter() - start
    log.info("internal learning on %s: %d iteration(s), %.1f s", image_id, iterations, record["seconds"])
    return Chain(model_dirs, device=device), record
