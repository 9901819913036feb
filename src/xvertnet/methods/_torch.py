"""Small helpers shared by the learned methods: patch sampling, saving and loading, inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from xvertnet.errors import InputFileError
from xvertnet.io.atomic import atomic_path
from xvertnet.model.device import select_device
from xvertnet.provenance import sha256_file


def random_patches(images: list[np.ndarray], size: int, count: int, rng: np.random.Generator) -> torch.Tensor:
    """``count`` random ``size`` x ``size`` patches (B, C, size, size) from (H, W) or (C, H, W) images (smaller ones padded).

    The channels of a (C, H, W) image (e.g. an image and its mask) are cut at the same place.
    """
    stacked = [image[None] if image.ndim == 2 else image for image in images]
    patches = np.empty((count, stacked[0].shape[0], size, size), np.float32)
    for index in range(count):
        image = stacked[rng.integers(len(stacked))]
        height, width = image.shape[-2:]
        if height < size or width < size:
            image = np.pad(image, ((0, 0), (0, max(0, size - height)), (0, max(0, size - width))), mode="reflect")
        top = rng.integers(image.shape[-2] - size + 1)
        left = rng.integers(image.shape[-1] - size + 1)
        patches[index] = image[:, top : top + size, left : left + size]
    return torch.from_numpy(patches)


def standardise(image: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance, float32 (a flat image becomes zeros): the input of the task networks."""
    spread = float(image.std())
    return ((image - image.mean()) / spread if spread > 0 else image - image.mean()).astype(np.float32)


def save_model(model: torch.nn.Module, out_dir: Path, metadata: dict) -> dict:
    """``model.pt`` (state dict, safe to load) and ``model.json`` (metadata + sha256), atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    metadata = {**metadata, "model_sha256": sha256_file(out_dir / "model.pt")}
    with atomic_path(out_dir / "model.json") as tmp:
        tmp.write_text(json.dumps(metadata, indent=2, default=float))
    return metadata


def load_weights(model: torch.nn.Module, model_dir: Path) -> dict:
    """Load ``model.pt`` into ``model`` after checking its sha256 against ``model.json``."""
    model_dir = Path(model_dir)
    metadata = json.loads((model_dir / "model.json").read_text())
    if sha256_file(model_dir / "model.pt") != metadata["model_sha256"]:
        raise InputFileError(
            model_dir / "model.pt", "sha256 differs from the one model.json records (a damaged or replaced model file)"
        )
    model.load_state_dict(torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True))
    model.eval()
    return metadata


@torch.no_grad()
def apply(model: torch.nn.Module, image: np.ndarray, device: str = "auto") -> torch.Tensor:
    """Run a fully convolutional model on one (H, W) image; returns the model's output on the CPU."""
    target = select_device(device)
    model.to(target)
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(target)
    output = model(tensor)
    return output.cpu() if isinstance(output, torch.Tensor) else tuple(o.cpu() for o in output)
