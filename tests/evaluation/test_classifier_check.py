"""The classifier check on a small synthetic labelled set: positives carry a bright nodule, negatives none.

A method that keeps the nodule visible must be classified well above chance; one that flattens the
image must not. Labels are read like NIH's Data_Entry_2017.csv (``|``-separated findings).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xvertnet.errors import InputFileError, InvalidValueError
from xvertnet.evaluation.classifier_check import (
    ClassifierSettings,
    LabelSpec,
    classifier_markdown,
    classifier_rows,
    read_labels,
    roc_auc,
)
from xvertnet.io.shard_store import open_shard_for_writing

SETTINGS = ClassifierSettings(size=32, iterations=60, batch_size=16, learning_rate=0.001, seeds=(0,), bootstrap=200)


def _labels_csv(tmp_path, count=40) -> tuple[pd.DataFrame, LabelSpec]:
    findings = ["Emphysema" if index % 2 else "No Finding" for index in range(count)]
    findings[3] = "Effusion|Emphysema"  # several findings in one cell
    rows = [
        {"Image Index": f"{index:08d}_000.png", "Finding Labels": finding} for index, finding in enumerate(findings)
    ]
    rows.append({"Image Index": "99999999_000.png", "Finding Labels": "Atelectasis"})  # neither class: left out
    table = pd.DataFrame(rows)
    table.to_csv(tmp_path / "Data_Entry_2017.csv", index=False)
    return table, LabelSpec(path=str(tmp_path / "Data_Entry_2017.csv"))


def _enhanced(tmp_path, labels: pd.Series, transform, name: str):
    rng = np.random.default_rng(0)
    path = tmp_path / f"{name}.h5"
    with open_shard_for_writing(path, stage="enhance", params={"method": name, "dataset": "synthetic"}) as writer:
        for index, (image_id, label) in enumerate(labels.items()):
            image = 0.5 + rng.normal(0, 0.05, (64, 64))
            if label:
                row, column = rng.integers(12, 52, size=2)
                yy, xx = np.mgrid[:64, :64]
                image += 0.3 * (np.hypot(yy - row, xx - column) < 6)
            writer.add(
                image_id,
                {"whole": transform(np.clip(image, 0, 1).astype(np.float32))},
                {"split": "train" if index < 24 else "test"},
            )
    return [path]


def test_labels_are_read_like_nih(tmp_path):
    _, spec = _labels_csv(tmp_path)
    labels = read_labels(spec)
    assert len(labels) == 40 and "99999999_000" not in labels.index
    assert labels["00000003_000"] == 1 and labels["00000000_000"] == 0 and labels["00000001_000"] == 1
    with pytest.raises(InputFileError, match="no column 'Finding'"):
        read_labels(LabelSpec(path=spec.path, label_column="Finding"))
    with pytest.raises(InputFileError, match="label file not found"):
        read_labels(LabelSpec(path=str(tmp_path / "missing.csv")))


def test_a_visible_finding_is_classified_and_a_flat_image_is_not(tmp_path):
    _, spec = _labels_csv(tmp_path)
    labels = read_labels(spec)
    kept, per_image = classifier_rows(
        "identity", "synthetic", _enhanced(tmp_path, labels, lambda image: image, "identity"), labels, SETTINGS
    )
    flat, _ = classifier_rows(
        "flat",
        "synthetic",
        _enhanced(tmp_path, labels, lambda image: np.full_like(image, 0.5), "flat"),
        labels,
        SETTINGS,
    )
    assert kept[0]["n_train"] == 24 and kept[0]["n_test"] == 16 and len(per_image) == 16
    assert kept[0]["auc"] > 0.9, kept[0]
    assert abs(flat[0]["auc"] - 0.5) < 0.2 and flat[0]["balanced_accuracy"] == pytest.approx(0.5), flat[0]
    assert kept[0]["auc_low"] <= kept[0]["auc"] <= kept[0]["auc_high"]
    markdown = classifier_markdown(pd.DataFrame(kept + flat))
    assert "| synthetic | identity | 24 / 16 (8) |" in markdown


def test_one_class_only_is_refused_and_auc_is_the_mann_whitney_statistic(tmp_path):
    _, spec = _labels_csv(tmp_path)
    labels = read_labels(spec)
    negatives = labels[labels == 0]
    with pytest.raises(InvalidValueError, match="needs both classes"):
        classifier_rows(
            "identity", "synthetic", _enhanced(tmp_path, negatives, lambda image: image, "neg"), negatives, SETTINGS
        )
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert np.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))
    with pytest.raises(ValueError, match="both trained on and tested"):
        ClassifierSettings(train_splits=("train", "test"))
