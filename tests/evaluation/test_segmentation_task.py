"""The segmentation task: a segmenter trained on a method's output, scored on unseen ROIs.

The synthetic ROIs are noisy images of rectangular "vertebral bodies" at random places, stored as
a ROI shard (masks) and enhanced shards (images) like the workflow's. A method that keeps the
bodies visible must score a high Dice; one that flattens the image to grey must not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xvertnet.errors import InputFileError
from xvertnet.evaluation.metrics_shard import aggregate
from xvertnet.evaluation.segmentation_task import SegmentationTaskSettings, boundary_distances, segmentation_rows
from xvertnet.io.shard_store import open_shard_for_writing

SETTINGS = SegmentationTaskSettings(channels=(8, 16, 32), iterations=300, crop=32, batch_size=8, seeds=(0,))
SHAPE = (64, 40)


def _bodies(rng) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    top = int(rng.integers(0, 14))
    while top + 10 < SHAPE[0]:
        left = int(rng.integers(0, 28))
        mask[top : top + 8, left : left + 12] = True
        top += int(rng.integers(12, 18))
    return mask


def _write(tmp_path, transform, *, count=8, method="identity") -> tuple[list, list]:
    """A ROI shard of ``count`` images (first half train, rest test) and the method's enhanced shard."""
    rng = np.random.default_rng(1)
    roi_path, enhanced_path = tmp_path / "roi.h5", tmp_path / f"{method}.h5"
    items = []
    for index in range(count):
        masks = {roi: _bodies(rng) for roi in ("eval_upper", "eval_lower")}
        images = {
            roi: np.clip(0.4 + 0.25 * mask + rng.normal(0, 0.05, SHAPE), 0, 1).astype(np.float32)
            for roi, mask in masks.items()
        }
        items.append((f"img{index}", "train" if index < count // 2 else "test", masks, images))
    with open_shard_for_writing(roi_path, stage="roi", params={}) as writer:
        for image_id, split, masks, images in items:
            writer.add(
                image_id,
                {**images, **{f"mask_{roi}": mask.astype(np.uint8) for roi, mask in masks.items()}},
                {"split": split},
            )
    if not enhanced_path.exists():
        with open_shard_for_writing(
            enhanced_path, stage="enhance", params={"method": method, "dataset": "synthetic"}
        ) as writer:
            for image_id, split, _, images in items:
                writer.add(image_id, {roi: transform(image) for roi, image in images.items()}, {"split": split})
    return [enhanced_path], [roi_path]


def test_visible_bodies_are_segmented_and_a_flat_image_is_not(tmp_path):
    kept = segmentation_rows("identity", *_write(tmp_path, lambda image: image), SETTINGS)
    flat = segmentation_rows("flat", *_write(tmp_path, lambda image: np.full_like(image, 0.5), method="flat"), SETTINGS)
    assert len(kept) == len(flat) == 8  # 4 test images x 2 ROIs; the training ROIs are never scored
    assert {row["split"] for row in kept} == {"test"}
    kept_dice = np.mean([row["seg_dice"] for row in kept])
    flat_dice = np.mean([row["seg_dice"] for row in flat])
    assert kept_dice > 0.8, kept_dice
    assert flat_dice < kept_dice - 0.3, (flat_dice, kept_dice)  # a flat image leaves only where bodies tend to be
    assert np.mean([row["seg_hd95"] for row in kept]) < np.mean([row["seg_hd95"] for row in flat])


def test_same_seed_same_rows_and_seeds_are_averaged(tmp_path):
    shards = _write(tmp_path, lambda image: image)
    first = segmentation_rows("identity", *shards, SETTINGS)
    again = segmentation_rows("identity", *shards, SETTINGS)
    assert [row["seg_dice"] for row in first] == [row["seg_dice"] for row in again]
    other = segmentation_rows("identity", *shards, SegmentationTaskSettings(**{**SETTINGS.__dict__, "seeds": (1,)}))
    both = segmentation_rows("identity", *shards, SegmentationTaskSettings(**{**SETTINGS.__dict__, "seeds": (0, 1)}))
    for a, b, mean in zip(first, other, both):
        assert mean["seg_dice"] == pytest.approx((a["seg_dice"] + b["seg_dice"]) / 2)


def test_empty_prediction_scores_the_diagonal_not_nan():
    truth = np.zeros((30, 40), bool)
    truth[10:20, 10:20] = True
    assert boundary_distances(np.zeros_like(truth), truth) == (50.0, 50.0)
    assert boundary_distances(truth, truth) == (0.0, 0.0)
    shifted = np.roll(truth, 3, axis=0)
    hd95, asd = boundary_distances(shifted, truth)
    assert 0 < asd <= hd95 <= 3


def test_no_masks_gives_no_rows_and_a_mismatched_roi_shard_is_named(tmp_path, caplog):
    enhanced, roi = _write(tmp_path, lambda image: image)
    only_train = SegmentationTaskSettings(**{**SETTINGS.__dict__, "train_splits": ("train", "test")})
    assert segmentation_rows("identity", enhanced, roi, only_train) == []
    assert "segmentation task skipped" in caplog.text
    other = tmp_path / "other"
    other.mkdir()
    with open_shard_for_writing(other / "roi.h5", stage="roi", params={}) as writer:
        writer.add("someone_else", {"eval_upper": np.zeros(SHAPE, np.float32)}, {"split": "test"})
    with pytest.raises(InputFileError, match="img0 .* is not in this ROI shard"):
        segmentation_rows("identity", enhanced, [other / "roi.h5"], SETTINGS)


def test_settings_refuse_a_crop_the_unet_cannot_halve():
    with pytest.raises(ValueError, match="multiple of 4"):
        SegmentationTaskSettings(channels=(8, 16, 32), crop=30)


def test_aggregate_merges_the_rows_into_per_roi(tmp_path):
    measured = pd.DataFrame(
        [
            {"dataset": "d", "image_id": "a", "split": "test", "roi": roi, "method": method, "cnr": 2.0, "edge": 1.0}
            for roi in ("upper", "lower")
            for method in ("original", "clahe")
        ]
    )
    measured.to_csv(tmp_path / "m.csv", index=False)
    pd.DataFrame(
        [
            {
                "dataset": "d",
                "image_id": "a",
                "split": "test",
                "roi": "upper",
                "method": "clahe",
                "seg_dice": 0.7,
                "seg_hd95": 4.0,
                "seg_asd": 1.0,
            }
        ]
    ).to_csv(tmp_path / "seg.csv", index=False)
    table = aggregate(
        [tmp_path / "m.csv"],
        tmp_path / "per_roi.csv",
        enhanced={},
        manifests={},
        segmentation_csvs=[tmp_path / "seg.csv"],
    )
    assert len(table) == 4
    row = table[(table["method"] == "clahe") & (table["roi"] == "upper")].iloc[0]
    assert row["seg_dice"] == 0.7 and row["split"] == "test"
    assert table["seg_dice"].isna().sum() == 3
