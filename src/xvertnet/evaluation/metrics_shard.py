"""The metrics stage: every measure for every method's evaluation ROIs, and the long table.

* :func:`metrics_shard`: one CSV per method and shard; a row per image and ROI (upper,
  lower) with every measure of :func:`xvertnet.metrics.measure_all` and the parameters. TMQI
  takes the original ROI as its reference; the vertebra mask (DRRs) gives the task measures, the
  level map (DRRs) the display-referred measures on the whole image.
* :func:`aggregate`: ``per_roi.csv``, one row per dataset x image x ROI x method, with the
  task measures as ratios to the original ROI (``cnr_ratio``, ``edge_ratio``) and, for
  degraded DRRs, PSNR/SSIM of the method's output against the same method's output on the
  clean DRR of the same view (``consistency_psnr``, ``consistency_ssim``), and the segmentation
  task's Dice and boundary distances (:mod:`xvertnet.evaluation.segmentation_task`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from xvertnet.errors import InputFileError
from xvertnet.io.atomic import atomic_path
from xvertnet.io.shard_store import EVAL_ROIS, ITEMS, decode_attr, file_attrs, read_item, read_shard
from xvertnet.metrics import MetricParams, VertebraTask, measure_all, psnr, ssim, to_255
from xvertnet.metrics.displayed import level_visibility, roi_visibility
from xvertnet.metrics.task import body_scale

log = logging.getLogger(__name__)


def shard_identity(enhanced_path) -> dict:
    """What an enhanced shard records about itself: ``method`` (the name compared), ``kind``, ``dataset``."""
    params = file_attrs(enhanced_path).get("params", {})
    return {"method": params.get("method", ""), "kind": params.get("kind", ""), "dataset": params.get("dataset", "")}


def shards_by_method(enhanced_shards, *, key=("method",)) -> dict:
    """Enhanced shards grouped by their recorded method (or by a tuple of recorded keys), in the order given."""
    grouped: dict = {}
    for path in enhanced_shards:
        identity = shard_identity(path)
        group = identity[key[0]] if len(key) == 1 else tuple(identity[k] for k in key)
        grouped.setdefault(group, []).append(str(path))
    return grouped


def metrics_shard(enhanced_path, roi_path, out_path, *, params: MetricParams | None = None, splits=None) -> int:
    """Measure every evaluation ROI of one method's enhanced shard (of ``splits``, when given); write a CSV;
    return the row count. Images of other splits (the segmentation task's training images) are skipped.

    Where the ROI shard holds a vertebral level map and the method enhanced the whole image, each
    ROI row also gets the display-referred measures of :mod:`xvertnet.metrics.displayed` (the
    levels centred in the ROI's rows, measured on the whole image at one window), and
    ``displayed_per_level`` (JSON: level -> contrast, CNR, saturation, centre row).
    """
    params = params or MetricParams()
    identity = shard_identity(enhanced_path)
    method, dataset = identity["method"], identity["dataset"]
    protocol = file_attrs(enhanced_path).get("params", {}).get("protocol", "")
    twins = [f"{roi}_twin" for roi in EVAL_ROIS]
    rows = []
    with read_shard(roi_path) as originals, read_shard(enhanced_path) as enhanced:
        for image_id in enhanced[ITEMS].keys() if ITEMS in enhanced else ():
            if splits is not None and decode_attr(enhanced[ITEMS][image_id].attrs.get("split", "")) not in splits:
                continue
            arrays, attrs = read_item(enhanced, image_id, list(EVAL_ROIS), optional=twins)
            source = originals[ITEMS][image_id]
            body_px = body_scale(source["canonical"].shape[0])
            per_level = None
            group = enhanced[ITEMS][image_id]
            if "vertebra_levels" in source and "whole" in group:
                whole, levels = group["whole"][()], source["vertebra_levels"][()]
                if whole.shape != levels.shape:
                    raise InputFileError(
                        str(enhanced_path),
                        f"{image_id}: whole image {whole.shape} and the level map of "
                        f"{roi_path} {levels.shape} differ in shape (not the same ROI shard?)",
                    )
                twin = group["whole_twin"][()] if "whole_twin" in group else None
                per_level = level_visibility(whole, levels, twin=twin, band=params.cnr_band)
            boxes = decode_attr(source.attrs["boxes"])
            for roi in EVAL_ROIS:
                mask = source[f"mask_{roi}"][()] if f"mask_{roi}" in source else None
                twin = arrays.get(f"{roi}_twin")
                errors: dict[str, str] = {}
                details: dict = {}
                values = measure_all(
                    to_255(arrays[roi]),
                    reference255=to_255(source[roi][()]),
                    task=None if mask is None or twin is None else VertebraTask(mask, to_255(twin), body_px),
                    params=params,
                    errors=errors,
                    details=details,
                )
                if mask is not None and twin is None:
                    log.warning("%s %s %s: no noise twin, so no vertebral CNR or edge measure", method, image_id, roi)
                if details["downsample"] > 1:
                    log.warning(
                        "%s %s %s: above metrics.max_pixels %d, measured on its %dx%d block mean",
                        method,
                        image_id,
                        roi,
                        params.max_pixels,
                        details["downsample"],
                        details["downsample"],
                    )
                for measure, reason in errors.items():
                    log.warning("%s %s %s: %s is NaN (%s)", method, image_id, roi, measure, reason)
                if per_level is not None:
                    values |= roi_visibility(per_level, boxes[roi])
                    values["displayed_per_level"] = json.dumps(
                        {
                            int(level): {key: round(value, 5) for key, value in found.items()}
                            for level, found in per_level.items()
                        }
                    )
                rows.append(
                    {
                        "dataset": dataset,
                        "image_id": image_id,
                        "split": attrs.get("split", ""),
                        "roi": roi.split("_")[1],
                        "method": method,
                        "protocol": protocol,
                        **values,
                        "params": json.dumps(params.record(), sort_keys=True),
                    }
                )
            arrays = None  # one image in memory at a time
            log.info("measured %s %s", method, image_id)
    with atomic_path(out_path, record_hash=True) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return len(rows)


def _load_enhanced(shards) -> dict[str, dict[str, np.ndarray]]:
    found = {}
    for shard in shards:
        with read_shard(shard) as handle:
            for image_id, group in handle.get(ITEMS, {}).items():
                found[image_id] = {roi: group[roi][()] for roi in EVAL_ROIS}
    return found


def consistency_rows(method: str, dataset: str, enhanced_shards, manifest: pd.DataFrame) -> list[dict]:
    """PSNR/SSIM of the method's output on each degraded DRR against its output on the clean DRR of the view."""
    if not {"view", "condition"} <= set(manifest.columns):
        return []
    enhanced = _load_enhanced(enhanced_shards)
    conditions = manifest.set_index("image_id")[["view", "condition"]]
    clean_of = {row.view: image_id for image_id, row in conditions.iterrows() if row.condition == "standard"}
    rows = []
    for image_id, images in enhanced.items():
        if image_id not in conditions.index:
            continue
        view, condition = conditions.loc[image_id, "view"], conditions.loc[image_id, "condition"]
        partner = clean_of.get(view)
        if condition in ("standard", "real") or partner not in enhanced:
            continue
        for roi in EVAL_ROIS:
            degraded, clean = to_255(images[roi]), to_255(enhanced[partner][roi])
            rows.append(
                {
                    "dataset": dataset,
                    "image_id": image_id,
                    "roi": roi.split("_")[1],
                    "method": method,
                    "consistency_psnr": psnr(degraded, clean),
                    "consistency_ssim": ssim(degraded, clean),
                }
            )
    return rows


def aggregate(
    metric_csvs, out_path, *, enhanced: dict[tuple[str, str], list], manifests: dict[str, str], segmentation_csvs=()
) -> pd.DataFrame:
    """The long table ``per_roi.csv``; ``enhanced`` maps (dataset, method) to enhanced shards; the segmentation
    task's rows (:mod:`xvertnet.evaluation.segmentation_task`), where given, add ``seg_dice``, ``seg_hd95``, ``seg_asd``."""
    from xvertnet.io.content_hash import checked_digest

    frames = [pd.read_csv(path) for path in metric_csvs if Path(path).stat().st_size > 1 and checked_digest(path)]
    frames = [frame for frame in frames if len(frame)]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(table) and "cnr" in table.columns:
        keys = ["dataset", "image_id", "roi"]
        original = table[table["method"] == "original"].set_index(keys)[["cnr", "edge"]].add_suffix("_original")
        joined = table.join(original, on=keys)
        # a ratio means "as visible as the original" only where the original shows the vertebra (value > 0)
        table["cnr_ratio"] = joined["cnr"] / joined["cnr_original"].where(joined["cnr_original"] > 0)
        table["edge_ratio"] = joined["edge"] / joined["edge_original"].where(joined["edge_original"] > 0)
    consistency = []
    for (dataset, method), shards in enhanced.items():
        manifest_path = manifests.get(dataset)
        if manifest_path and Path(manifest_path).exists():
            consistency += consistency_rows(method, dataset, shards, pd.read_csv(manifest_path, keep_default_na=False))
    if consistency and len(table):
        table = table.merge(pd.DataFrame(consistency), on=["dataset", "image_id", "roi", "method"], how="left")
    patients = []
    for dataset, manifest_path in manifests.items():
        if manifest_path and Path(manifest_path).exists():
            manifest = pd.read_csv(manifest_path, keep_default_na=False)
            found = manifest["patient"] if "patient" in manifest.columns else manifest["image_id"]
            patients.append(
                pd.DataFrame({"dataset": dataset, "image_id": manifest["image_id"], "patient": found.astype(str)})
            )
    if patients and len(
        table
    ):  # every row names its patient (an image is its own patient where the manifest says none)
        table = table.merge(pd.concat(patients, ignore_index=True), on=["dataset", "image_id"], how="left")
        table["patient"] = table["patient"].where(table["patient"].astype(str).str.len() > 0, table["image_id"])
        table.insert(2, "patient", table.pop("patient"))
    segmentation = [frame for frame in (pd.read_csv(path) for path in segmentation_csvs) if len(frame)]
    if segmentation and len(table):
        scored = pd.concat(segmentation, ignore_index=True).drop(columns=["split"])
        table = table.merge(scored, on=["dataset", "image_id", "roi", "method"], how="left")
    with atomic_path(out_path, record_hash=True) as tmp:
        table.to_csv(tmp, index=False)
    return table
