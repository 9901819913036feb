"""The ``prep`` stage: Eqs. 1-6 on every training and evaluation crop of a ROI shard.

Writes one HDF5 file per shard (:mod:`xvertnet.io.shard_store`): per image, one group per
ROI (``train_upper``, ``train_lower``, ``eval_upper``, ``eval_lower``) holding float32
datasets ``X``, ``Xp`` and ``Y`` (the HFC), each one chunk, compressed; the item's
attributes hold the crop geometry (boxes in canonical pixels, scale), the split and
per-ROI statistics; the file's attributes hold lambda, alpha, eps, the solver, the
guards, the package version and the sha256 of the input ROI shard. The file appears
only when complete (temporary name, then rename).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from xvertnet.errors import InputFileError, InvalidValueError
from xvertnet.io.atomic import atomic_path
from xvertnet.io.content_hash import checked_digest
from xvertnet.io.shard_store import (
    ITEMS,
    ROI_NAMES,
    TRAIN_ROIS,
    file_attrs,
    iter_items,
    open_shard_for_writing,
    read_shard,
)
from xvertnet.preprocessing.preprocess import PrepParams, preprocess

log = logging.getLogger(__name__)

#: What the prep shard stores per ROI.
STORED = ("X", "Xp", "Y")
#: A training crop's bone-emphasised target, when the data set has one (demo.bone_emphasis).
BONE_TARGET = "B"


def bone_targets(group) -> dict[str, np.ndarray]:
    """The bone prior's targets of one image's ROI group: ``<train roi>/B``, each crop min-max scaled to [0, 1]."""
    targets = {}
    for name in TRAIN_ROIS:
        if f"bone_{name}" in group:
            crop = group[f"bone_{name}"][()].astype(np.float32)
            low, high = float(crop.min()), float(crop.max())
            targets[f"{name}/{BONE_TARGET}"] = (crop - low) / (high - low) if high > low else np.zeros_like(crop)
    return targets


def prep_shard(roi_path, out_path, params: PrepParams, *, figure_dir=None) -> int:
    """Preprocess every crop of a ROI shard into ``out_path``; return the number of images.

    When ``figure_dir`` is given, a Fig. 1-style panel (X, X_inv, E, Xp, Y of the
    upper training crop) is written per image, for the first ``params.figures_per_shard``
    images.
    """
    roi_path = Path(roi_path)
    if figure_dir is not None:
        Path(figure_dir).mkdir(parents=True, exist_ok=True)
    upstream = {"roi": file_attrs(roi_path).get("params", {})}
    with (
        open_shard_for_writing(out_path, stage="prep", params=params.record(), upstream=upstream) as shard,
        read_shard(roi_path) as roi_handle,
    ):
        shard.inputs[str(roi_path)] = checked_digest(roi_path)
        for index, (image_id, arrays, attrs) in enumerate(iter_items(roi_path, names=list(ROI_NAMES))):
            stored, statistics = {}, {}
            stored.update(bone_targets(roi_handle[ITEMS][image_id]))
            for name in ROI_NAMES:
                try:
                    result = preprocess(arrays[name], params)
                except InvalidValueError as error:  # a crop the guards cannot take (NaN, not 2-D)
                    raise InputFileError(roi_path, f"{image_id}/{name}: {error}") from None
                for key in STORED:
                    if not np.isfinite(result[key]).all():  # the guards make this unreachable; never store it
                        raise FloatingPointError(f"{roi_path}: {image_id}/{name}/{key} is not finite")
                    stored[f"{name}/{key}"] = result[key]
                statistics[name] = {
                    "xp_raw_min": result["xp_raw_min"],
                    "xp_raw_max": result["xp_raw_max"],
                    "e_clamped_fraction": result["e_clamped_fraction"],
                    "hfc_std": float(result["Y"].std()),
                }
                if name == "train_upper" and figure_dir is not None and index < params.figures_per_shard:
                    preprocessing_figure(result, Path(figure_dir) / f"{image_id}.png", title=f"{image_id} ({name})")
            shard.add(
                image_id,
                stored,
                {
                    "split": attrs.get("split", ""),
                    "source": attrs.get("source", ""),
                    "boxes": attrs["boxes"],
                    "scale": attrs["scale"],
                    "statistics": statistics,
                },
            )
            log.info(
                "prep %s: HFC std %s", image_id, ", ".join(f"{n} {s['hfc_std']:.4f}" for n, s in statistics.items())
            )
        count = shard.count
    return count


def preprocessing_figure(result: dict, path, *, title: str = "") -> None:
    """The paper's Fig. 1 for one crop: (a) X, (b) X_inv, (c) E, (d) Xp, (e) Y.

    The images (a, b, d) share the fixed window [0, 1], so a low-contrast input looks low in contrast; the
    maps (c, e) are windowed on their own range (Y symmetric about 0); every panel has its colour bar."""
    from xvertnet.io.figures import pyplot, save_figure

    plt = pyplot()
    panels = [
        ("X", "(a) input X"),
        ("X_inv", "(b) inverted (Eq. 1)"),
        ("E", "(c) combined E (Eq. 4)"),
        ("Xp", "(d) preprocessed Xp (Eq. 5)"),
        ("Y", "(e) HFC Y (Eq. 6)"),
    ]
    figure, axes = plt.subplots(1, 5, figsize=(16, 3.6), constrained_layout=True)
    for axis, (key, label) in zip(axes, panels):
        image = result[key]
        if key == "Y":
            high = float(np.percentile(np.abs(image), 99.5))
            low = -high
        elif key == "E":
            low, high = float(image.min()), float(image.max())
        else:
            low, high = 0.0, 1.0
        shown = axis.imshow(image, cmap="gray", vmin=low, vmax=high if high > low else low + 1e-6)
        figure.colorbar(shown, ax=axis, shrink=0.8, pad=0.02)
        axis.set_title(label, fontsize=9)
        axis.axis("off")
    save_figure(figure, path, dpi=80, title=title)


def write_prep_summary(prep_shards, out_path) -> int:
    """One CSV row per image and ROI: the per-crop statistics stored by :func:`prep_shard`."""
    import pandas as pd

    from xvertnet.io.shard_store import ITEMS, decode_attr, read_shard

    rows = []
    for shard in prep_shards:
        with read_shard(shard) as handle:
            for image_id, group in handle.get(ITEMS, {}).items():
                statistics = decode_attr(group.attrs["statistics"])
                split = decode_attr(group.attrs.get("split", ""))
                for name, values in statistics.items():
                    rows.append({"image_id": image_id, "roi": name, "split": split, "shard": str(shard), **values})
    with atomic_path(out_path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return len(rows)
