"""Rule ``train_baseline``: train a learned baseline (zerodce on the training crops, madmad on synthetic data).

Its ``model.json`` records what it was trained on (``trained_on``: the training images and their patients), so that a
study outside the workflow (``xvertnet detectability``) can refuse a model that has seen one of its test patients.
"""

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
    trained_on = (
        training_images(args.data, manifests, method.training_splits)
        if method.uses_training_crops
        else {"source": "data of its own", "splits": [], "image_ids": [], "patients": [], "unmapped_image_ids": []}
    )
    record_training_data(args.out_dir, trained_on)
    logging.getLogger("xvertnet").info(
        "trained %s in %.1f s: loss %.4f -> %.4f",
        args.method,
        metadata["seconds"],
        metadata["first_loss"],
        metadata["last_loss"],
    )
    return 0


def training_images(shards, manifests: dict | None, splits=("train",)) -> dict:
    """What a model trained on the images of ``splits`` in ``shards`` has seen: their ids and patients (from the
    manifests' ``patient`` column), and the ids no manifest names a patient for (``unmapped_image_ids``)."""
    from xvertnet.io.datasets import read_manifest
    from xvertnet.io.shard_store import iter_items

    ids = sorted(
        image_id
        for shard in shards
        for image_id, _, attrs in iter_items(shard, names=[])
        if attrs.get("split") in splits
    )
    patient_of: dict[str, str] = {}
    for manifest in (manifests or {}).values():
        table = read_manifest(manifest)
        if "patient" in table.columns:
            rows = table[table["image_id"].isin(ids) & (table["patient"].astype(str) != "")]
            patient_of.update(zip(rows["image_id"], rows["patient"].astype(str)))
    return {
        "source": "project images",
        "splits": list(splits),
        "image_ids": ids,
        "patients": sorted(set(patient_of.values())),
        "unmapped_image_ids": [image_id for image_id in ids if image_id not in patient_of],
    }


def record_training_data(model_dir: Path, trained_on: dict) -> None:
    """Add ``trained_on`` (:func:`training_images`, or ``source`` "data of its own" for a method trained on data of its
    own, such as Madmad's synthetic images) to ``model.json``."""
    import json

    from xvertnet.io.atomic import atomic_path

    path = Path(model_dir) / "model.json"
    metadata = json.loads(path.read_text())
    metadata["trained_on"] = {"images": len(trained_on.get("image_ids", [])), **trained_on}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(metadata, indent=2, default=float))
