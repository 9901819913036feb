"""SRCNN (Dong et al. 2014/2016) and VDSR (Kim et al. 2016) for grey radiographs (seed ``srcnn_vdsr_benchmark.txt``).

Both take the low-resolution image already upscaled to the target size by bicubic interpolation, as in both
papers:

* **SRCNN 9-1-5**: conv 9 x 9 (1 -> 64), ReLU, conv 1 x 1 (64 -> 32), ReLU, conv 5 x 5 (32 -> 1): 8,032 weights
  + 97 biases = 8,129 parameters (Dong et al., Table 1 base network). Zero padding keeps the size (the
  paper's valid convolutions shrink it by 12 pixels; the loss here covers the whole patch).
* **VDSR**: ``depth`` 3 x 3 convolutions of 64 filters (20 as published: 665,921 parameters; the seed's
  reduced version 11), ReLU between them, and the residual connection ``y = x + f(x)``: the network learns
  the missing high frequencies. The last convolution starts at zero, so an untrained VDSR is the identity on
  its bicubic input. Trained with gradient-norm clipping (the paper's adjustable clipping bounds the
  gradient by theta / lr; a fixed norm here) on scales x2, x3 and x4 mixed (VDSR's multi-scale model).

The low-resolution input of a ground-truth image is :func:`bicubic_pair`: bicubic downscaling with
antialiasing (as MATLAB's ``imresize``, which both papers used), then bicubic upscaling back to the size.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xvertnet.model.network import count_parameters as parameter_count  # noqa: F401 (the one parameter count)


class Srcnn(nn.Module):
    def __init__(self, *, filters=(64, 32), kernels=(9, 1, 5)):
        super().__init__()
        f1, f2 = filters
        k1, k2, k3 = kernels
        self.body = nn.Sequential(
            nn.Conv2d(1, f1, k1, padding=k1 // 2),
            nn.ReLU(True),
            nn.Conv2d(f1, f2, k2, padding=k2 // 2),
            nn.ReLU(True),
            nn.Conv2d(f2, 1, k3, padding=k3 // 2),
        )

    def forward(self, upscaled: torch.Tensor) -> torch.Tensor:
        return self.body(upscaled)


class Vdsr(nn.Module):
    def __init__(self, *, depth: int = 20, filters: int = 64):
        super().__init__()
        layers = [nn.Conv2d(1, filters, 3, padding=1), nn.ReLU(True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(filters, filters, 3, padding=1), nn.ReLU(True)]
        self.last = nn.Conv2d(filters, 1, 3, padding=1)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)
        self.body = nn.Sequential(*layers, self.last)
        for module in self.body[:-1]:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")  # He et al., as VDSR
                nn.init.zeros_(module.bias)

    def forward(self, upscaled: torch.Tensor) -> torch.Tensor:
        return upscaled + self.body(upscaled)  # residual learning


def bicubic_pair(image: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic low-resolution version of (B, 1, H, W) at 1/``scale`` (antialiased), upscaled back to H x W."""
    height, width = image.shape[-2:]
    low = F.interpolate(
        image,
        size=(max(height // scale, 1), max(width // scale, 1)),
        mode="bicubic",
        antialias=True,
        align_corners=False,
    )
    return F.interpolate(low, size=(height, width), mode="bicubic", align_corners=False).clamp(0.0, 1.0)


def training_batch(crops: list[np.ndarray], rng: np.random.Generator, *, batch: int, patch: int, scales=(2, 3, 4)):
    """(inputs, targets): random patches (a quarter turn and a mirror per batch) and their bicubic inputs at a
    random scale each."""
    from xvertnet.methods._torch import random_patches

    targets = torch.rot90(random_patches(crops, patch, batch, rng), k=int(rng.integers(4)), dims=(2, 3))
    targets = (targets.flip(-1) if rng.random() < 0.5 else targets).contiguous()
    chosen = rng.choice(scales, size=batch)
    inputs = torch.cat([bicubic_pair(targets[i : i + 1], int(s)) for i, s in enumerate(chosen)])
    return inputs, targets


@dataclasses.dataclass(frozen=True)
class SRSchedule:
    """How a super-resolution network is trained: Adam steps on random patches of one of ``scales``,
    the gradient norm clipped at ``clip`` (VDSR's adjustable clipping; None: no clipping)."""

    steps: int
    batch: int
    patch: int
    lr: float
    scales: tuple[int, ...] = (2, 3, 4)
    clip: float | None = 0.4
    seed: int = 0

    @classmethod
    def from_params(cls, params: dict) -> SRSchedule:
        """The schedule of a method's parameters (``steps``, ``batch_size``, ``patch``, ``lr``, ``scales``,
        ``clip``, ``seed``)."""
        return cls(
            steps=int(params["steps"]),
            batch=int(params["batch_size"]),
            patch=int(params["patch"]),
            lr=float(params["lr"]),
            scales=tuple(int(s) for s in params["scales"]),
            clip=params["clip"],
            seed=int(params["seed"]),
        )


def train_sr(
    network: nn.Module, crops: list[np.ndarray], schedule: SRSchedule, device: torch.device | None = None
) -> list[float]:
    """Adam on the MSE of the output against the ground truth (both papers' loss); returns the loss per step."""
    steps, batch, patch, scales, clip = schedule.steps, schedule.batch, schedule.patch, schedule.scales, schedule.clip
    lr, seed = schedule.lr, schedule.seed
    device = device or torch.device("cpu")
    rng = np.random.default_rng(seed)
    network.to(device).train()
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        inputs, targets = training_batch(crops, rng, batch=batch, patch=patch, scales=scales)
        loss = F.mse_loss(network(inputs.to(device)), targets.to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(network.parameters(), clip)
        optimiser.step()
        losses.append(float(loss.detach()))
    network.to("cpu").eval()
    return losses


@torch.no_grad()
def apply_sr(network: nn.Module, upscaled: np.ndarray, device: str = "auto") -> np.ndarray:
    """The network on one (already upscaled) image in [0, 1]."""
    from xvertnet.methods._torch import apply

    return apply(network.eval(), upscaled, device)[0, 0].clamp(0.0, 1.0).numpy()
