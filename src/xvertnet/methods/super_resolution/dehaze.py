"""Attention-based dehazing applied iteratively with a stop rule (seed ``srcnn_vdsr_benchmark.txt``, after ClearSight).

**Haze model** (atmospheric scattering, Koschmieder): ``I = J t + A (1 - t)`` with the clean image J, the
transmission t in (0, 1] (a smooth random field here: haze that varies over the image) and the airlight A
(one grey value per image). Its inverse given t and A is ``J = (I - A (1 - t)) / t`` (:func:`remove_haze`).

**Network** (:class:`DehazeNet`): convolutional features, multi-head self-attention over the feature map at
1/4 resolution (global context: haze is a low-frequency veil), refinement convolutions; it predicts t (a
sigmoid, at least ``T_MIN``) and A (pooled features, a sigmoid) and returns the inverse of the haze model
under them, so the output is physically a dehazed image. Loss: MSE of the image plus MSE of t.

**Iterations with a stop rule** (:func:`iterate_with_stop_rule`): the seed computes PSNR and SSIM after each
iteration and halts when quality deteriorates beyond thresholds. A deployed method has no clean image to
compare with, so the measures here compare each iteration with the one before, and the process halts,
keeping the previous image, when an iteration changes the image more than the one before did (its PSNR
more than ``psnr_drop`` dB or its SSIM more than ``ssim_drop`` lower: the iterations diverge instead of
settling) or after ``max_iterations``. The first iteration is always taken. The iteration count is recorded.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

T_MIN = 0.1


def add_haze(clean, transmission, airlight):
    """I = J t + A (1 - t) (numpy or torch)."""
    return clean * transmission + airlight * (1 - transmission)


def remove_haze(hazy, transmission, airlight):
    """J = (I - A (1 - t)) / t, the inverse of :func:`add_haze` (t at least ``T_MIN``)."""
    t = transmission.clip(T_MIN, 1.0) if isinstance(transmission, np.ndarray) else torch.clamp(transmission, T_MIN, 1.0)
    return (hazy - airlight * (1 - t)) / t


def random_haze(shape, rng: np.random.Generator, *, transmission=(0.4, 0.95), airlight=(0.6, 1.0), grid: int = 3):
    """A smooth random transmission field and an airlight value."""
    from xvertnet.methods.lut_mapping.model import smooth_field

    return smooth_field(shape, *transmission, rng, grid=grid), float(rng.uniform(*airlight))


class DehazeNet(nn.Module):
    def __init__(self, *, width: int = 32, heads: int = 4):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(True), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(True)
        )
        self.down = nn.Conv2d(width, width, 4, stride=4)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.refine = nn.Sequential(
            nn.Conv2d(2 * width, width, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(width, 1, 3, padding=1),
        )
        self.airlight = nn.Linear(width, 1)

    def forward(self, hazy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(dehazed, transmission, airlight) of (B, 1, H, W) hazy images in [0, 1]."""
        height, width = hazy.shape[-2:]
        features = self.features(hazy)
        coarse = self.down(F.pad(features, (0, -width % 4, 0, -height % 4), mode="replicate"))
        b, c, h, w = coarse.shape
        tokens = self.norm(coarse.flatten(2).transpose(1, 2))
        context, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        context = (tokens + context).transpose(1, 2).reshape(b, c, h, w)
        context_up = F.interpolate(context, size=(height, width), mode="bilinear", align_corners=False)
        transmission = T_MIN + (1 - T_MIN) * torch.sigmoid(self.refine(torch.cat([features, context_up], dim=1)))
        airlight = torch.sigmoid(self.airlight(context.mean(dim=(2, 3))))[:, :, None, None]
        return remove_haze(hazy, transmission, airlight).clamp(0.0, 1.0), transmission, airlight


def dehaze_loss(output, transmission, clean, true_transmission) -> torch.Tensor:
    return F.mse_loss(output, clean) + F.mse_loss(transmission, true_transmission)


def training_batch(crops, rng: np.random.Generator, *, batch: int, patch: int):
    """(hazy, clean, transmission) tensors of random patches (a quarter turn per batch) under random haze."""
    from xvertnet.methods._torch import random_patches

    clean = torch.rot90(random_patches(crops, patch, batch, rng), k=int(rng.integers(4)), dims=(2, 3)).contiguous()
    hazes = [random_haze((patch, patch), rng) for _ in range(batch)]
    transmission = torch.from_numpy(np.stack([t for t, _ in hazes])[:, None])
    airlight = torch.tensor([a for _, a in hazes], dtype=torch.float32)[:, None, None, None]
    return add_haze(clean, transmission, airlight), clean, transmission


def train_dehaze(
    network: DehazeNet, crops, *, steps: int, batch: int, patch: int, lr: float, seed: int = 0
) -> list[float]:
    rng = np.random.default_rng(seed)
    network.train()
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        hazy, clean, transmission = training_batch(crops, rng, batch=batch, patch=patch)
        output, predicted, _ = network(hazy)
        loss = dehaze_loss(output, predicted, clean, transmission)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    network.eval()
    return losses


def iterate_with_stop_rule(
    step: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    *,
    max_iterations: int = 5,
    psnr_drop: float = 1.0,
    ssim_drop: float = 0.01,
) -> tuple[np.ndarray, int, list[dict]]:
    """``(result, iterations, log)``: apply ``step`` while the iterations converge. After each iteration the PSNR
    and SSIM of the new image against the previous one are computed (0-255 mapping); from the second iteration
    on, the process halts, keeping the previous image, when the PSNR falls more than ``psnr_drop`` dB or the
    SSIM more than ``ssim_drop`` below the previous iteration's, i.e. when an iteration changes the image more
    than the one before (the quality deteriorates instead of settling), or after ``max_iterations``."""
    from xvertnet.metrics import psnr, ssim, to_255

    current, log = image, []
    for iteration in range(1, max_iterations + 1):
        candidate = step(current)
        quality = {
            "iteration": iteration,
            "psnr": psnr(to_255(candidate), to_255(current)),
            "ssim": ssim(to_255(candidate), to_255(current)),
        }
        log.append(quality)
        if iteration > 1 and (
            quality["psnr"] < log[-2]["psnr"] - psnr_drop or quality["ssim"] < log[-2]["ssim"] - ssim_drop
        ):
            return current, iteration - 1, log
        current = candidate
    return current, max_iterations, log


@torch.no_grad()
def dehaze_once(network: DehazeNet, image: np.ndarray, device: str = "auto") -> np.ndarray:
    from xvertnet.methods._torch import apply

    return apply(network.eval(), image, device)[0][0, 0].numpy()
