"""Loading trained XVertNet iterations and applying them: the inference chain (Sec. 3.4, Eq. 7).

The chain: preprocess (Eqs. 1-6) -> f_1 -> HFC of its output (Eq. 6) -> f_2 -> ...
Iteration t's inputs are the previous output (``Xp``; for t = 1 the preprocessed crop)
and/or the original crop ``X``, as each model was trained.

* :func:`load_model` rebuilds one trained iteration from its folder (hash checked).
* :class:`Chain` applies iterations 1..T to crops and (tiled) whole images.
* :func:`refine_shard` writes iteration t's data shard: per crop the original ``X``, the
  model's output as the next ``Xp`` and its recomputed HFC ``Y`` (the prep layout).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from xvertnet.errors import InvalidValueError, XvertnetError
from xvertnet.io.content_hash import checked_digest
from xvertnet.io.shard_store import TRAIN_ROIS, file_attrs, iter_items, open_shard_for_writing
from xvertnet.model.device import autocast, prepare_model, resolve_precision, select_device, to_device
from xvertnet.model.network import ModelConfig, XVertNet, pad_to_multiple
from xvertnet.preprocessing.preprocess import PrepParams, high_frequency_components, preprocess
from xvertnet.provenance import sha256_file
from xvertnet.settings import FromConfig


@dataclasses.dataclass(frozen=True)
class EnhanceSettings(FromConfig):
    """Applying trained models (config section ``enhance``): device, tiles of whole images, splits enhanced."""

    SECTION: ClassVar[str] = "enhance"

    tile: int = 512
    overlap: int = 64
    device: str = "auto"
    precision: str = "auto"
    splits: tuple[str, ...] = ("val", "test")
    native_radius: int = 4
    native_eps: float = 1e-4


class ModelError(XvertnetError):
    """A model folder is incomplete or does not match its record."""


def load_model(model_dir, device: torch.device | None = None) -> tuple[XVertNet, dict]:
    """Rebuild a trained model from ``model.json`` and ``model.pt`` (safe load); checks the hash."""
    model_dir = Path(model_dir)
    metadata_path, weights_path = model_dir / "model.json", model_dir / "model.pt"
    for path in (metadata_path, weights_path):
        if not path.is_file():
            raise ModelError(f"{path}: missing (a model directory holds model.json and model.pt)")
    metadata = json.loads(metadata_path.read_text())
    if sha256_file(weights_path) != metadata["model_sha256"]:
        raise ModelError(f"{weights_path}: sha256 differs from model.json (a partial copy or another model)")
    device = device or torch.device("cpu")
    # Models written before the `upsample` choice existed used transposed convolutions.
    model = XVertNet(ModelConfig(**{"upsample": "transpose", **metadata["model"]}))
    model.load_state_dict(torch.load(weights_path, map_location=device, weights_only=True))
    return prepare_model(model, device).eval(), metadata


class Chain:
    """Trained iterations 1..T, applied in order; loads every model once."""

    def __init__(self, model_dirs, *, device: str = "auto", precision: str = "auto", batch_size: int = 8):
        model_dirs = [Path(d) for d in model_dirs]
        if not model_dirs:
            raise XvertnetError("enhance: no model directories given")
        self.device = select_device(device)
        self.dtype = resolve_precision(self.device, precision)
        self.batch_size = batch_size
        loaded = [load_model(d, self.device) for d in model_dirs]
        self.models: list[XVertNet] = [model for model, _ in loaded]
        self.metadata: list[dict] = [metadata for _, metadata in loaded]
        self.prep = PrepParams.from_config(self.metadata[0]["data"]["prep"])
        self.canonical_height = self.metadata[0]["data"].get("roi", {}).get("canonical_height")
        self.model_dirs = model_dirs

    def describe(self) -> dict:
        return {
            "iterations": len(self.models),
            "models": [str(d) for d in self.model_dirs],
            "autocast": str(self.dtype or "fp32"),
            "model_sha256": [m["model_sha256"] for m in self.metadata],
            "prep": self.prep.record(),
        }

    @staticmethod
    def inputs(metadata: dict, xp: np.ndarray, x: np.ndarray) -> np.ndarray:
        names = metadata["train"]["inputs"]
        return np.stack([{"Xp": xp, "X": x}[name] for name in names]).astype(np.float32)

    @torch.no_grad()
    def predict(self, model: XVertNet, inputs: np.ndarray, hfc: np.ndarray) -> np.ndarray:
        """Batched inference on (N, C, H, W) inputs and (N, 1, H, W) HFC; any H, W (padded)."""
        outputs = []
        for start in range(0, inputs.shape[0], self.batch_size):
            batch = torch.from_numpy(inputs[start : start + self.batch_size])
            guide = torch.from_numpy(hfc[start : start + self.batch_size])
            batch, (height, width) = pad_to_multiple(batch, model.config.multiple)
            guide, _ = pad_to_multiple(guide, model.config.multiple)
            with autocast(self.device, self.dtype):
                output, _ = model(to_device(batch, self.device), to_device(guide, self.device))
            outputs.append(output.float()[:, 0, :height, :width].cpu().numpy())
        return np.concatenate(outputs)

    def predict_tiled(
        self, model: XVertNet, inputs: np.ndarray, hfc: np.ndarray, *, tile: int, overlap: int
    ) -> np.ndarray:
        """Inference on one large (C, H, W) image in overlapping tiles blended with a linear taper."""
        _, height, width = inputs.shape
        if height <= tile and width <= tile:
            return self.predict(model, inputs[None], hfc[None])[0]
        step = tile - overlap
        if step <= 0:
            raise InvalidValueError(f"overlap ({overlap}) must be smaller than the tile ({tile})")
        ramp = np.minimum(np.arange(1, tile + 1), np.arange(tile, 0, -1)).astype(np.float32)
        ramp = np.minimum(ramp / max(overlap, 1), 1.0)
        window = np.outer(ramp, ramp) + 1e-3
        total = np.zeros((height, width), np.float32)
        weight = np.zeros((height, width), np.float32)
        tops = sorted({min(top, max(height - tile, 0)) for top in range(0, max(height - overlap, 1), step)})
        lefts = sorted({min(left, max(width - tile, 0)) for left in range(0, max(width - overlap, 1), step)})
        for top in tops:
            for left in lefts:
                patch = inputs[:, top : top + tile, left : left + tile]
                guide = hfc[:, top : top + tile, left : left + tile]
                output = self.predict(model, patch[None], guide[None])[0]
                w = window[: output.shape[0], : output.shape[1]]
                total[top : top + output.shape[0], left : left + output.shape[1]] += w * output
                weight[top : top + output.shape[0], left : left + output.shape[1]] += w
        return total / weight

    def run(
        self, x: np.ndarray, *, iterations: int | None = None, tile: int | None = None, overlap: int = 64
    ) -> np.ndarray:
        """The chain on one crop or image X in [0, 1]: preprocess (Eqs. 1-6), then f_1, HFC, f_2, ..."""
        result = preprocess(x, self.prep)
        output, hfc = result["Xp"], result["Y"]
        applied = list(zip(self.models, self.metadata))[:iterations]
        for index, (model, metadata) in enumerate(applied):
            if index > 0:  # the HFC of the previous output guides the next iteration (Eq. 6)
                hfc = high_frequency_components(output, self.prep.wls).astype(np.float32)
            inputs = self.inputs(metadata, output, x)
            guide = hfc[None].astype(np.float32)
            if tile:
                output = self.predict_tiled(model, inputs, guide, tile=tile, overlap=overlap)
            else:
                output = self.predict(model, inputs[None], guide[None])[0]
        return output.astype(np.float32)


def refine_shard(model_dir, data_shard, out_path, *, rois=TRAIN_ROIS, device: str = "auto", batch_size: int = 8) -> int:
    """Apply model t to iteration t-1's data shard: the next iteration's ``Xp`` and recomputed ``Y`` (Eq. 6)."""
    chain = Chain([model_dir], device=device, batch_size=batch_size)
    metadata = chain.metadata[0]
    source = file_attrs(data_shard)
    params = {"prep": chain.prep.record(), "iteration": metadata["iteration"], "model_sha256": metadata["model_sha256"]}
    with open_shard_for_writing(out_path, stage="refine", params=params, upstream=source.get("upstream", {})) as shard:
        shard.inputs[str(data_shard)] = checked_digest(data_shard)
        for image_id, arrays, attrs in iter_items(data_shard):
            stored = {}
            present = [roi for roi in rois if f"{roi}/Xp" in arrays]
            if not present:
                continue
            inputs = np.stack([chain.inputs(metadata, arrays[f"{roi}/Xp"], arrays[f"{roi}/X"]) for roi in present])
            hfc = np.stack([arrays[f"{roi}/Y"][None] for roi in present]).astype(np.float32)
            outputs = chain.predict(chain.models[0], inputs, hfc)
            for roi, output in zip(present, outputs):
                stored[f"{roi}/X"] = arrays[f"{roi}/X"]
                stored[f"{roi}/Xp"] = output.astype(np.float32)
                stored[f"{roi}/Y"] = high_frequency_components(output, chain.prep.wls).astype(np.float32)
                if f"{roi}/B" in arrays:  # the bone prior's target goes on to the next iteration
                    stored[f"{roi}/B"] = arrays[f"{roi}/B"]
            shard.add(
                image_id, stored, {key: attrs[key] for key in ("split", "source", "boxes", "scale") if key in attrs}
            )
        count = shard.count
    return count


def native_resolution(
    full: np.ndarray,
    low_input: np.ndarray,
    low_output: np.ndarray,
    *,
    radius: int = 4,
    eps: float = 1e-4,
    max_gain: float = 4.0,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """Carry an enhancement computed at low resolution over to the full-resolution image.

    The low-resolution output is upsampled (bilinear) and the detail that downsampling took
    from the input (``full - upsampled low_input``) is added back, scaled by the local gain of
    the enhancement: the slope ``a`` of the local affine fit ``low_output ~ a * low_input + b``
    (the guided filter's coefficients, He et al. 2013: window ``2 radius + 1``, regulariser
    ``eps``), smoothed with the same window, clipped to [0, ``max_gain``] and upsampled:

        out = up(low_output) + up(a) * (full - up(low_input))

    So the result equals the network's output at its own scale, keeps the input's finer
    detail (amplified where the network raised contrast) instead of the blur of a resize,
    and the gain map is smooth, so no pixel-scale pattern reaches the fine detail.

    ``keep`` (low resolution, bool) marks pixels whose detail is added back with gain 1: burned-in
    labels hidden from the network (``low_input`` is then the filled image), which come back whole.
    """
    from scipy import ndimage
    from skimage.transform import resize

    size = 2 * radius + 1
    low_input = low_input.astype(np.float64)
    low_output = low_output.astype(np.float64)

    def mean(values):
        return ndimage.uniform_filter(values, size, mode="reflect")

    def up(values):
        return resize(values, full.shape, order=1, mode="edge", anti_aliasing=False).astype(np.float32)

    mean_in, mean_out = mean(low_input), mean(low_output)
    covariance = mean(low_input * low_output) - mean_in * mean_out
    variance = mean(low_input * low_input) - mean_in**2
    gain = np.clip(mean(covariance / (variance + eps)), 0.0, max_gain)
    detail = full.astype(np.float32) - up(low_input)
    gain = up(gain)
    if keep is not None and keep.any():
        kept = up(keep.astype(np.float64))
        gain = gain * (1.0 - kept) + kept
    return np.clip(up(low_output) + gain * detail, 0.0, 1.0)
