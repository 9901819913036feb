"""Madmad et al. 2021-style enhancement: a two-branch CNN trained on synthetic radiograph-like data.

Synthetic data (:func:`synthetic_sample`): a smooth background of overlapping elliptic and
rectangular shapes of random density, blurred, plus small local structures - nodule-like
Gaussian blobs, fracture-like thin broken segments and vessel-like thin curved lines - whose
layer is known. A network with a shared trunk and two heads estimates the background and
the structure layer; the two estimates are projected so that they sum to the input exactly
(the residual is split equally). Enhancement amplifies the structure branch:
out = background + gain * structures.

Reference: T. Madmad, N. Delinte, C. De Vleeschouwer. CNN-based morphological decomposition
of X-ray images for details and defects contrast enhancement. CVPR Workshops 2021.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from xvertnet.methods import Method, register
from xvertnet.methods._torch import apply, load_weights, save_model


def synthetic_sample(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, background, structures), float32, image = background + structures, in about [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    background = np.full((size, size), rng.uniform(0.1, 0.4), np.float32)
    for _ in range(rng.integers(2, 6)):
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(size / 8, size / 2, 2)
        density = rng.uniform(-0.15, 0.3)
        if rng.random() < 0.5:
            shape = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        else:
            shape = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
        background += density * shape
    background = ndimage.gaussian_filter(background, rng.uniform(2.0, 5.0))
    structures = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(1, 4)):  # nodules
        cy, cx = rng.uniform(0, size, 2)
        sigma = rng.uniform(1.0, 3.0)
        structures += rng.uniform(0.04, 0.15) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    for _ in range(rng.integers(0, 3)):  # fractures: a thin segment with a gap
        canvas = np.zeros((size, size), np.float32)
        y0, x0 = rng.uniform(0, size, 2)
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(size / 6, size / 3)
        for t in np.linspace(0, length, int(4 * length)):
            if abs(t - length / 2) > 1.5:
                y, x = int(y0 + t * np.sin(angle)), int(x0 + t * np.cos(angle))
                if 0 <= y < size and 0 <= x < size:
                    canvas[y, x] = 1.0
        structures += rng.uniform(-0.12, 0.12) * ndimage.gaussian_filter(canvas, 0.6) * 2
    for _ in range(rng.integers(0, 3)):  # vessels: a smooth random walk
        canvas = np.zeros((size, size), np.float32)
        y, x = rng.uniform(0, size, 2)
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(size * 1.5)):
            angle += rng.normal(0, 0.15)
            y, x = y + np.sin(angle), x + np.cos(angle)
            if 0 <= y < size and 0 <= x < size:
                canvas[int(y), int(x)] = 1.0
        structures += rng.uniform(0.03, 0.1) * ndimage.gaussian_filter(canvas, rng.uniform(0.5, 1.2)) * 2
    return (background + structures).astype(np.float32), background.astype(np.float32), structures.astype(np.float32)


class TwoBranchNet(nn.Module):
    """Shared trunk, a background head and a structure head; outputs sum to the input."""

    def __init__(self, width: int = 32, layers: int = 5):
        super().__init__()
        trunk, channels = [], 1
        for _ in range(layers):
            trunk += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        self.trunk = nn.Sequential(*trunk)
        self.background_head = nn.Conv2d(width, 1, 3, padding=1)
        self.structure_head = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(image)
        background = self.background_head(features)
        structures = self.structure_head(features)
        residual = image - background - structures  # project onto background + structures == image
        return background + 0.5 * residual, structures + 0.5 * residual


@register
class Madmad(Method):
    name = "madmad"
    trainable = True
    uses_training_crops = False  # trained on synthetic data only
    defaults = {
        "steps": 400,
        "batch_size": 16,
        "patch": 64,
        "lr": 1e-3,
        "width": 32,
        "layers": 5,
        "gain": 3.0,
        "seed": 0,
        "device": "auto",
    }

    def __init__(self, params=None):
        super().__init__(params)
        torch.manual_seed(self.params["seed"])
        self.network = TwoBranchNet(self.params["width"], self.params["layers"])

    def fit(self, crops: list[np.ndarray], out_dir: Path) -> dict:
        """Trains on synthetic data only (``crops`` are not used: the method's point)."""
        rng = np.random.default_rng(self.params["seed"])
        optimiser = torch.optim.Adam(self.network.parameters(), lr=self.params["lr"])
        self.network.train()
        history, start = [], time.perf_counter()
        for _ in range(self.params["steps"]):
            samples = [synthetic_sample(rng, self.params["patch"]) for _ in range(self.params["batch_size"])]
            image, background, structures = (torch.from_numpy(np.stack(part)[:, None]) for part in zip(*samples))
            predicted_background, predicted_structures = self.network(image)
            loss = torch.nn.functional.mse_loss(predicted_background, background) + torch.nn.functional.mse_loss(
                predicted_structures, structures
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            history.append(float(loss.detach()))
        return save_model(
            self.network,
            out_dir,
            {
                "method": self.name,
                "params": self.params,
                "first_loss": history[0],
                "last_loss": float(np.mean(history[-20:])),
                "seconds": time.perf_counter() - start,
            },
        )

    def load(self, model_dir: Path) -> None:
        load_weights(self.network, model_dir)

    def decompose(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.network.eval()
        background, structures = apply(self.network, image, self.params["device"])
        return background[0, 0].numpy(), structures[0, 0].numpy()

    def enhance(self, image: np.ndarray) -> np.ndarray:
        background, structures = self.decompose(image)
        return background + self.params["gain"] * structures
