"""A task-based measure: how well a vertebra segmenter trained on a method's output does on unseen patients.

No enhancement paper reports whether a downstream segmenter does better on its output. For one
method, :func:`segmentation_rows` trains a small U-Net (MONAI's ``UNet``, config section
``segmentation_task``) on the method's enhanced evaluation ROIs of the training splits with their
projected vertebral-body masks (the DRRs' ``mask_eval_*``), then segments the ROIs of every other
split and scores each against its mask:

* ``seg_dice``: Dice overlap of the predicted and the true vertebral-body mask;
* ``seg_hd95``: the 95th percentile of the symmetric boundary distance (px at the canonical
  height; MONAI's ``compute_hausdorff_distance``), and ``seg_asd``, the mean symmetric surface
  distance. A ROI where the segmenter finds nothing gets Dice 0 and, as its distances, the ROI's
  diagonal (the largest error possible), so that failing does not drop out of the mean.

Every method gets the same network, seeds, crops, iterations and learning rate, and its images the
same per-image standardisation (zero mean, unit variance), so the rows differ only by the images
the method produced. With several ``seeds`` a segmenter is trained per seed and each ROI's
values are the mean over them. Real radiographs have no mask and are not scored; a data set without masks
(NIH, CheXpert) gives an empty table and a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import ClassVar

import numpy as np

from xvertnet.demo.vertebra_labels import dice
from xvertnet.errors import InputFileError, InvalidValueError
from xvertnet.io.shard_store import EVAL_ROIS, ITEMS, decode_attr, read_shard
from xvertnet.settings import FromConfig

log = logging.getLogger(__name__)

#: Columns of the per-ROI table this stage writes (merged into ``per_roi.csv``).
COLUMNS = ("dataset", "image_id", "split", "roi", "method", "seg_dice", "seg_hd95", "seg_asd")


@dataclasses.dataclass(frozen=True)
class SegmentationTaskSettings(FromConfig):
    """The segmenter and its training budget (config section ``segmentation_task``), equal for every method."""

    SECTION: ClassVar[str] = "segmentation_task"

    enabled: bool = True
    train_splits: tuple[str, ...] = ("train",)
    channels: tuple[int, ...] = (8, 16, 32, 64)
    iterations: int = 400
    batch_size: int = 8
    crop: int = 64
    learning_rate: float = 0.001
    seeds: tuple[int, ...] = (0,)
    threshold: float = 0.5
    device: str = "auto"

    def __post_init__(self):
        if len(self.channels) < 2:
            raise InvalidValueError(f"segmentation_task.channels needs at least two levels, got {list(self.channels)}")
        if self.crop % 2 ** (len(self.channels) - 1):
            raise InvalidValueError(
                f"segmentation_task.crop {self.crop} must be a multiple of {2 ** (len(self.channels) - 1)} "
                f"(2 to the number of down-samplings of channels {list(self.channels)})"
            )
        if not self.seeds:
            raise InvalidValueError("segmentation_task.seeds needs at least one seed")
        if not 0.0 < self.threshold < 1.0:
            raise InvalidValueError(f"segmentation_task.threshold must be in (0, 1), got {self.threshold}")


@dataclasses.dataclass
class LabelledRoi:
    dataset: str
    image_id: str
    split: str
    roi: str
    image: np.ndarray
    mask: np.ndarray


def labelled_rois(enhanced_shards, roi_shards) -> list[LabelledRoi]:
    """The method's enhanced evaluation ROIs that have a vertebral-body mask; ``roi_shards[i]`` is the
    ROI shard ``enhanced_shards[i]`` was enhanced from."""
    if len(enhanced_shards) != len(roi_shards):
        raise InvalidValueError(
            f"{len(enhanced_shards)} enhanced shards but {len(roi_shards)} ROI shards: give one ROI shard per enhanced shard"
        )
    found = []
    for enhanced_path, roi_path in zip(enhanced_shards, roi_shards):
        with read_shard(enhanced_path) as enhanced, read_shard(roi_path) as originals:
            dataset = decode_attr(enhanced.attrs.get("params", "{}")).get("dataset", "")
            for image_id, group in enhanced[ITEMS].items() if ITEMS in enhanced else ():
                if image_id not in originals.get(ITEMS, {}):
                    raise InputFileError(
                        str(roi_path),
                        f"{image_id} of {enhanced_path} is not in this ROI shard (not the shard it was enhanced from?)",
                    )
                source = originals[ITEMS][image_id]
                split = decode_attr(group.attrs.get("split", source.attrs.get("split", "")))
                for roi in EVAL_ROIS:
                    if f"mask_{roi}" not in source or roi not in group:
                        continue
                    image, mask = group[roi][()].astype(np.float32), source[f"mask_{roi}"][()].astype(bool)
                    if image.shape != mask.shape:
                        raise InputFileError(
                            str(enhanced_path),
                            f"{image_id} {roi}: enhanced {image.shape} and mask {mask.shape} differ in shape",
                        )
                    found.append(LabelledRoi(dataset, image_id, split, roi.split("_")[1], image, mask))
    return found


def build_segmenter(settings: SegmentationTaskSettings):
    """MONAI's 2-D U-Net, one residual unit per level, one output channel (vertebral body logit)."""
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=tuple(settings.channels),
        strides=(2,) * (len(settings.channels) - 1),
        num_res_units=1,
    )


def train_segmenter(rois: list[LabelledRoi], settings: SegmentationTaskSettings, seed: int):
    """Train on random ``crop`` x ``crop`` patches (left-right flips) of the ROIs; returns (model, final loss)."""
    import torch
    from monai.losses import DiceCELoss

    from xvertnet.methods._torch import random_patches, standardise
    from xvertnet.model.device import autocast, prepare_model, resolve_precision, select_device, to_device

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = select_device(settings.device)
    precision = resolve_precision(device, "fp32" if device.type == "cpu" else "auto")
    model = prepare_model(build_segmenter(settings), device)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    loss_function = DiceCELoss(sigmoid=True)
    pairs = [np.stack([standardise(roi.image), roi.mask.astype(np.float32)]) for roi in rois]
    model.train()
    losses = []
    for _ in range(settings.iterations):
        batch = random_patches(pairs, settings.crop, settings.batch_size, rng)
        flip = torch.from_numpy(rng.random(settings.batch_size) < 0.5)
        batch[flip] = batch[flip].flip(-1)
        batch = to_device(batch.pin_memory() if device.type == "cuda" else batch, device)
        with autocast(device, precision):
            logits = model(batch[:, :1])
        loss = loss_function(logits.float(), batch[:, 1:])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.detach().item())
    model.eval()
    tail = losses[-max(1, len(losses) // 10) :]
    return model, float(np.mean(tail))


def segment(model, image: np.ndarray, settings: SegmentationTaskSettings) -> np.ndarray:
    """The predicted vertebral-body mask of one ROI (padded by reflection to the U-Net's multiple)."""
    import torch

    from xvertnet.methods._torch import standardise

    multiple = 2 ** (len(settings.channels) - 1)
    height, width = image.shape
    padded = np.pad(standardise(image), ((0, -height % multiple), (0, -width % multiple)), mode="reflect")
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(torch.from_numpy(padded)[None, None].to(device))
    return (torch.sigmoid(logits)[0, 0, :height, :width] > settings.threshold).cpu().numpy()


def boundary_distances(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(95th-percentile Hausdorff, mean surface) distance in px; the diagonal when ``predicted`` is empty."""
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    if not predicted.any():
        diagonal = float(np.hypot(*truth.shape))
        return diagonal, diagonal
    as_tensor = [torch.from_numpy(np.asarray(mask, bool))[None, None] for mask in (predicted, truth)]
    with warnings.catch_warnings():  # MONAI 1.6 warns about an argument of its own internal call
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        hd95 = compute_hausdorff_distance(*as_tensor, percentile=95.0)
        asd = compute_average_surface_distance(*as_tensor, symmetric=True)
    return float(hd95.item()), float(asd.item())


def segmentation_rows(method: str, enhanced_shards, roi_shards, settings: SegmentationTaskSettings) -> list[dict]:
    """Train on the method's ROIs of ``train_splits``, score every other masked ROI; one row per ROI."""
    rois = labelled_rois(enhanced_shards, roi_shards)
    training = [roi for roi in rois if roi.split in settings.train_splits and roi.mask.any()]
    scored = [roi for roi in rois if roi.split not in settings.train_splits and roi.mask.any()]
    if not training or not scored:
        log.warning(
            "%s: segmentation task skipped: %d masked ROIs in splits %s to train on, %d to score (a data set "
            "without vertebra masks, or enhance.splits without them)",
            method,
            len(training),
            list(settings.train_splits),
            len(scored),
        )
        return []
    scores = np.zeros((len(settings.seeds), len(scored), 3))
    for seed_index, seed in enumerate(settings.seeds):
        model, loss = train_segmenter(training, settings, seed)
        log.info(
            "%s: segmenter (seed %d) trained on %d ROIs, %d iterations, final Dice+CE loss %.4f",
            method,
            seed,
            len(training),
            settings.iterations,
            loss,
        )
        for roi_index, roi in enumerate(scored):
            predicted = segment(model, roi.image, settings)
            scores[seed_index, roi_index] = (dice(predicted, roi.mask), *boundary_distances(predicted, roi.mask))
    mean = scores.mean(axis=0)  # over seeds
    return [
        {
            "dataset": roi.dataset,
            "image_id": roi.image_id,
            "split": roi.split,
            "roi": roi.roi,
            "method": method,
            "seg_dice": mean[index, 0],
            "seg_hd95": mean[index, 1],
            "seg_asd": mean[index, 2],
        }
        for index, roi in enumerate(scored)
    ]
