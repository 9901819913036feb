"""The classifier check (seed ``led_cyclegan_diffusion_cxr.txt``): does a classifier do better on enhanced images?

The LED paper trained a ResNet-18 to tell COPD from normal on low-quality, enhanced and
high-quality radiographs (56.6 %, 66.3 %, 73.9 % accuracy). For a data set with labels (config
``datasets[].labels``: a CSV such as NIH's ``Data_Entry_2017.csv``, an id column, a label column
and the label values of the two classes), :func:`classifier_rows` trains a ResNet-18 (MONAI's
``resnet18``, 2-D, one input channel, from scratch: no pretrained weights offline) on a method's
enhanced whole images of the training split, resized to ``size`` x ``size``, and reports accuracy
and ROC AUC on the test split. Every method gets the same split, network, seeds, iterations and
learning rate (config section ``classifier_check``). It runs only for data sets with labels, not
in the demo.

Label files. A row's class is ``positive`` when its label column contains the positive label
(NIH's ``Finding Labels`` are ``|``-separated lists, e.g. ``Emphysema|Effusion``), ``negative``
when it equals the negative label (``No Finding``); other rows take no part. Ids are compared
without a file extension (``00000001_000.png`` = ``00000001_000``).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from xvertnet.errors import InputFileError, InvalidValueError
from xvertnet.io.shard_store import ITEMS, decode_attr, read_shard
from xvertnet.settings import FromConfig

log = logging.getLogger(__name__)

COLUMNS = (
    "dataset",
    "method",
    "n_train",
    "n_test",
    "positives_test",
    "accuracy",
    "balanced_accuracy",
    "auc",
    "auc_low",
    "auc_high",
    "seeds",
)


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """Where a data set's labels are (config ``datasets[].labels``)."""

    path: str
    id_column: str = "Image Index"
    label_column: str = "Finding Labels"
    positive: str = "Emphysema"
    negative: str = "No Finding"
    separator: str = "|"

    @classmethod
    def from_config(cls, entry: dict) -> LabelSpec:
        return cls(**entry)


def read_labels(spec: LabelSpec) -> pd.Series:
    """image id (no extension) -> 1 (positive) / 0 (negative); rows of neither class are left out."""
    path = Path(spec.path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputFileError(str(path), "label file not found (datasets[].labels.path)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputFileError(str(path), f"not a readable CSV ({str(error).splitlines()[0]})") from None
    missing = [column for column in (spec.id_column, spec.label_column) if column not in table.columns]
    if missing:
        raise InputFileError(str(path), f"no column {missing[0]!r} (columns: {', '.join(table.columns[:8])})")
    found = table[spec.label_column].map(lambda text: [part.strip() for part in text.split(spec.separator)])
    positive = found.map(lambda parts: spec.positive in parts)
    negative = table[spec.label_column].str.strip() == spec.negative
    ids = table[spec.id_column].map(lambda value: Path(value).stem if "." in value else value)
    labels = pd.Series(np.where(positive, 1, 0), index=ids)[(positive | negative).to_numpy()]
    return labels[~labels.index.duplicated()]


@dataclasses.dataclass(frozen=True)
class ClassifierSettings(FromConfig):
    """The classifier and its budget (config section ``classifier_check``), equal for every method."""

    SECTION: ClassVar[str] = "classifier_check"

    size: int = 256
    iterations: int = 2000
    batch_size: int = 32
    learning_rate: float = 0.0001
    seeds: tuple[int, ...] = (0,)
    train_splits: tuple[str, ...] = ("train",)
    test_splits: tuple[str, ...] = ("test",)
    bootstrap: int = 1000
    device: str = "auto"

    def __post_init__(self):
        if not self.seeds:
            raise InvalidValueError("classifier_check.seeds needs at least one seed")
        if set(self.train_splits) & set(self.test_splits):
            raise InvalidValueError(
                f"classifier_check: splits {sorted(set(self.train_splits) & set(self.test_splits))} "
                "are both trained on and tested"
            )


def labelled_images(enhanced_shards, labels: pd.Series, size: int) -> tuple[dict[str, list], list[str]]:
    """split -> [(image id, image at size x size, label)] of the enhanced whole images that have a label; each
    image standardised (the network's input) and kept as float16, so 20,000 images at 256 px take 2.6 GB."""
    from skimage.transform import resize

    from xvertnet.methods._torch import standardise

    found: dict[str, list] = {}
    unlabelled = []
    for path in enhanced_shards:
        with read_shard(path) as handle:
            for image_id, group in handle[ITEMS].items() if ITEMS in handle else ():
                if "whole" not in group:
                    raise InputFileError(
                        str(path),
                        f"{image_id}: no whole image (a method that enhances ROIs only "
                        "cannot take part in the classifier check)",
                    )
                if image_id not in labels.index:
                    unlabelled.append(image_id)
                    continue
                image = resize(
                    group["whole"][()].astype(np.float32), (size, size), anti_aliasing=True, preserve_range=True
                )
                found.setdefault(decode_attr(group.attrs.get("split", "")), []).append(
                    (image_id, standardise(image).astype(np.float16), int(labels[image_id]))
                )
    return found, unlabelled


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve (MONAI's ``compute_roc_auc``, ties counted half); NaN with one class only."""
    import torch
    from monai.metrics import compute_roc_auc

    if truth.min() == truth.max():
        return float("nan")
    return float(compute_roc_auc(torch.as_tensor(scores, dtype=torch.float64), torch.as_tensor(truth)))


def bootstrap_auc(scores: np.ndarray, truth: np.ndarray, resamples: int, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the AUC over test images."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(len(truth), size=len(truth))
        value = roc_auc(scores[pick], truth[pick])
        if np.isfinite(value):
            values.append(value)
    return (
        (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))
        if values
        else (float("nan"), float("nan"))
    )


def train_classifier(images: np.ndarray, labels: np.ndarray, settings: ClassifierSettings, seed: int):
    """ResNet-18 from scratch on (N, size, size) standardised images, cross-entropy, Adam, flips; batches drawn
    with each class equally likely (NIH's classes are far from balanced); returns the model."""
    import torch
    from monai.networks.nets import resnet18

    from xvertnet.model.device import autocast, grad_scaler, prepare_model, resolve_precision, select_device, to_device

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = select_device(settings.device)
    precision = resolve_precision(device, "fp32" if device.type == "cpu" else "auto")
    model = prepare_model(resnet18(spatial_dims=2, n_input_channels=1, num_classes=2), device)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    scaler = grad_scaler(device, precision)
    inputs = torch.from_numpy(images[:, None])  # float16, cast per batch
    targets = torch.from_numpy(labels.astype(np.int64))
    if device.type == "cuda":
        inputs, targets = inputs.pin_memory(), targets.pin_memory()
    weights = np.where(labels == 1, 0.5 / max(1, labels.sum()), 0.5 / max(1, (labels == 0).sum()))
    model.train()
    for _ in range(settings.iterations):
        pick = torch.from_numpy(rng.choice(len(labels), size=settings.batch_size, p=weights / weights.sum()))
        batch = inputs[pick].float()
        flip = torch.from_numpy(rng.random(len(pick)) < 0.5)
        batch[flip] = batch[flip].flip(-1)
        with autocast(device, precision):
            logits = model(to_device(batch, device))
        loss = torch.nn.functional.cross_entropy(logits.float(), targets[pick].to(device))
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
    model.eval()
    return model


def positive_probability(model, images: np.ndarray) -> np.ndarray:
    """The positive class's probability for (N, size, size) standardised images."""
    import torch

    device = next(model.parameters()).device
    scores = []
    with torch.no_grad():
        for start in range(0, len(images), 32):
            batch = torch.from_numpy(images[start : start + 32, None].astype(np.float32)).to(device)
            scores.append(torch.softmax(model(batch).float(), dim=1)[:, 1].cpu().numpy())
    return np.concatenate(scores)


def classifier_rows(
    method: str, dataset: str, enhanced_shards, labels: pd.Series, settings: ClassifierSettings
) -> tuple[list[dict], list[dict]]:
    """(one summary row for the method, one row per test image with its mean positive probability)."""
    found, unlabelled = labelled_images(enhanced_shards, labels, settings.size)
    if unlabelled:
        log.warning(
            "%s %s: %d enhanced images have no label of either class and take no part (e.g. %s)",
            method,
            dataset,
            len(unlabelled),
            unlabelled[0],
        )
    train = [item for split in settings.train_splits for item in found.get(split, [])]
    test = [item for split in settings.test_splits for item in found.get(split, [])]
    for name, part in (("training", train), ("test", test)):
        if len({label for _, _, label in part}) < 2:
            raise InvalidValueError(
                f"{method} {dataset}: the {name} images hold {len(part)} labelled images of "
                f"{len({label for _, _, label in part})} class(es); the classifier check needs both classes"
            )
    test_ids = [image_id for image_id, _, _ in test]
    train_labels, test_labels = np.array([label for _, _, label in train]), np.array([label for _, _, label in test])
    train_images = np.stack([image for _, image, _ in train])
    test_images = np.stack([image for _, image, _ in test])
    found = train = test = None  # the stacked copies only (peak memory: twice the images while stacking)
    scores = np.mean(
        [
            positive_probability(train_classifier(train_images, train_labels, settings, seed), test_images)
            for seed in settings.seeds
        ],
        axis=0,
    )
    auc = roc_auc(scores, test_labels)
    low, high = bootstrap_auc(scores, test_labels, settings.bootstrap)
    predicted = scores > 0.5
    summary = {
        "dataset": dataset,
        "method": method,
        "n_train": len(train_labels),
        "n_test": len(test_labels),
        "positives_test": int(test_labels.sum()),
        "accuracy": float((predicted == test_labels).mean()),
        "balanced_accuracy": float(np.mean([(predicted == test_labels)[test_labels == c].mean() for c in (0, 1)])),
        "auc": auc,
        "auc_low": low,
        "auc_high": high,
        "seeds": len(settings.seeds),
    }
    per_image = [
        {"dataset": dataset, "method": method, "image_id": image_id, "label": int(label), "probability": float(score)}
        for image_id, label, score in zip(test_ids, test_labels, scores)
    ]
    return [summary], per_image


def classifier_markdown(table: pd.DataFrame) -> str:
    """The classifier check as a markdown table, one row per data set and method."""
    lines = [
        "| data set | method | train / test images (test positives) | accuracy | balanced accuracy | ROC AUC [95 % CI] |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        lines.append(
            f"| {row.dataset} | {row.method} | {row.n_train} / {row.n_test} ({row.positives_test}) | {row.accuracy:.3f} | "
            f"{row.balanced_accuracy:.3f} | {row.auc:.3f} [{row.auc_low:.3f}, {row.auc_high:.3f}] |"
        )
    seeds = int(table["seeds"].max()) if len(table) else 0
    lines += [
        "",
        f"ResNet-18 from scratch per method, the same split, seeds ({seeds}) and iterations for every method; a test "
        "image's probability is the mean over seeds; accuracy at probability 0.5; the AUC interval is a percentile "
        "bootstrap over test images (config `classifier_check`).",
    ]
    return "\n".join(lines) + "\n"
