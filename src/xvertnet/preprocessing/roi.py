"""Spine regions of interest: canonical scale, automatic spine localisation, crops.

Every image is resampled to a canonical height (so crops from 1024², 2048² and
4020 x 4892 images cover comparable anatomy). The spine is then located without
manual input:

1. *Spine centre line.* In a frontal chest radiograph (bone bright) the thoracic
   spine is a bright vertical bar about a tenth of the image height wide, between
   darker lungs. A bar detector (mean over the bar minus the mean of the two flanks
   of the same width) responds to it; a dynamic programme then picks the vertical
   path through the central part of the image with the largest total response,
   moving at most ``max_step`` pixels sideways per row, and the path is smoothed.
2. *Vertical extent.* The lung fields are the rows where both flanks of the spine
   are markedly darker than the spine; the upper and lower ROIs are centred at
   fixed fractions of that extent (fractions of the image height when no lung
   field is found; which one was used is recorded).

Two training ROIs (paper: 512 x 512) and two evaluation ROIs (paper: 512 tall x
290 wide, narrow strips along the spine) are cut centred on the spine at the upper
and the lower position, identical for every method downstream.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from xvertnet.errors import XvertnetError
from xvertnet.io.atomic import atomic_path
from xvertnet.io.readers import flat_image_reason
from xvertnet.io.shard_store import TRAIN_ROIS, iter_items, open_shard_for_writing
from xvertnet.preprocessing.roi_qc import qc_overlay
from xvertnet.preprocessing.spine_location import (
    RoiSettings,
    anatomy_bounds,
    crop,
    locate_spine,
    resample_mask,
    roi_boxes,
    to_canonical,
)

log = logging.getLogger(__name__)


def roi_shard(ingest_path, out_path, qc_dir, settings: RoiSettings, rejects_path) -> tuple[int, int]:
    """Cut ROIs for every image of an ingest shard; return (stored, rejected).

    Writes ``out_path`` (HDF5: per image the canonical image, the four ROIs and,
    where a ground-truth vertebra mask exists, the mask and its four crops), one
    QC overlay PNG per image into ``qc_dir`` (the first ``settings.qc_max_per_shard``
    images), and a rejects CSV.
    """
    from xvertnet.io.ingest import write_rejects

    qc_dir = Path(qc_dir)
    qc_dir.mkdir(parents=True, exist_ok=True)
    rejects = []
    params = settings.record()
    with open_shard_for_writing(out_path, stage="roi", params=params) as shard:
        for index, (image_id, arrays, attrs) in enumerate(iter_items(ingest_path)):
            try:
                flat = flat_image_reason(arrays["image"])
                if flat:  # ingest rejects these; a shard written elsewhere may hold one
                    raise XvertnetError(f"{flat}, nothing to enhance")
                canonical, scale = to_canonical(arrays["image"], settings.canonical_height)
                location = locate_spine(canonical, settings)
                bounds = anatomy_bounds(canonical)
                boxes = roi_boxes(location, settings, canonical.shape, bounds)
            except (XvertnetError, ValueError) as error:
                reason = " ".join(str(error).split())
                log.warning("rejected %s at roi: %s", image_id, reason)
                rejects.append({"image_id": image_id, "path": str(ingest_path), "stage": "roi", "reason": reason})
                arrays = None  # freed before the next image is read
                continue
            stored = {"canonical": canonical, **{name: crop(canonical, box) for name, box in boxes.items()}}
            mask = None
            if "vertebra_mask" in arrays:
                mask = resample_mask(arrays["vertebra_mask"], canonical.shape)
                stored["vertebra_mask"] = mask
                stored.update({f"mask_{name}": crop(mask, box) for name, box in boxes.items()})
            if "vertebra_levels" in arrays:
                stored["vertebra_levels"] = resample_mask(arrays["vertebra_levels"], canonical.shape)
            if (
                "noise_twin" in arrays
            ):  # the same view with independent noise: enhanced alongside, for the noise measures
                stored["canonical_twin"], _ = to_canonical(arrays["noise_twin"], settings.canonical_height)
            if "bone_target" in arrays:  # the bone prior's target: the training crops only, same boxes
                bone, _ = to_canonical(arrays["bone_target"], settings.canonical_height)
                stored.update({f"bone_{name}": crop(bone, boxes[name]) for name in TRAIN_ROIS if name in boxes})
            record = {
                "split": attrs.get("split", ""),
                "source": attrs.get("source", ""),
                "provenance": attrs.get("provenance", {}),
                "scale": scale,
                "original_shape": list(arrays["image"].shape),
                "boxes": {name: list(box) for name, box in boxes.items()},
                "boxes_original": {name: [round(v / scale, 2) for v in box] for name, box in boxes.items()},
                "spine_centre_x": np.round(location.centre_x, 2).tolist(),
                "upper_y": location.upper_y,
                "lower_y": location.lower_y,
                "lung_rows": list(location.lung_rows) if location.lung_rows else [],
                "vertical_method": location.vertical_method,
                "anatomy_bounds": list(bounds),
            }
            shard.add(image_id, stored, record)
            if index < settings.qc_max_per_shard:
                qc_overlay(canonical, location, boxes, qc_dir / f"{image_id}.png", mask=mask)
            arrays = stored = canonical = None  # one image in memory at a time: freed before the next is read
        counts = shard.count
    write_rejects(rejects, rejects_path)
    return counts, len(rejects)


def write_roi_index(roi_shards, out_path, *, rejects_in=(), rejects_out) -> int:
    """One CSV row per image over all ROI shards (shard, split, scale, boxes), and the merged rejects.

    Reads only HDF5 attributes, not pixels. Returns the number of images indexed.
    """
    import pandas as pd

    from xvertnet.io.ingest import REJECT_COLUMNS
    from xvertnet.io.shard_store import ITEMS, decode_attr, read_shard

    rows = []
    for shard in roi_shards:
        with read_shard(shard) as handle:
            for image_id, group in handle.get(ITEMS, {}).items():
                attrs = {key: decode_attr(value) for key, value in group.attrs.items()}
                provenance = attrs.get("provenance", {})
                row = {
                    "image_id": image_id,
                    "shard": str(shard),
                    "split": attrs.get("split", ""),
                    "source": attrs.get("source", ""),
                    "format": provenance.get("format", ""),
                    "detected_bits": provenance.get("detected_bits", ""),
                    "sha256": provenance.get("sha256", ""),
                    "original_height": attrs["original_shape"][0],
                    "original_width": attrs["original_shape"][1],
                    "scale": attrs["scale"],
                    "has_mask": "vertebra_mask" in group,
                    "vertical_method": attrs.get("vertical_method", ""),
                    "upper_y": attrs.get("upper_y"),
                    "lower_y": attrs.get("lower_y"),
                }
                for name, (top, left, height, width) in attrs["boxes"].items():
                    row.update(
                        {f"{name}_top": top, f"{name}_left": left, f"{name}_height": height, f"{name}_width": width}
                    )
                rows.append(row)
    with atomic_path(out_path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    frames = [pd.read_csv(path, keep_default_na=False) for path in rejects_in if Path(path).stat().st_size > 0]
    merged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(REJECT_COLUMNS))
    with atomic_path(rejects_out) as tmp:
        merged.to_csv(tmp, index=False)
    return len(rows)
