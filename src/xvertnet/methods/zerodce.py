"""Zero-DCE (Li et al., CVPR 2020): zero-reference deep curve estimation, for grey images.

DCE-Net: 7 convolutional layers (32 maps, 3x3, ReLU) with symmetric skip concatenations;
the last layer gives, through tanh, n = 8 per-pixel curve parameter maps A_n in [-1, 1].
Light-enhancement curve, applied n times: LE(x) = x + A x (1 - x). Each application is
monotone in x for |A| <= 1 and maps [0, 1] onto [0, 1].

Zero-reference losses: spatial consistency (4x4 region means, differences to the four
neighbours kept), exposure control (16x16 patch means towards E = 0.6), colour constancy
(differences between channel means: identically zero for one grey channel, kept for the
definition's sake) and illumination smoothness (total variation of A). Weights as in the
authors' code: total = spa + 10 exp + 5 col + 200 TV_A.

Reference: C. Guo, C. Li, J. Guo, C. C. Loy, J. Hou, S. Kwong, R. Cong. Zero-reference deep
curve estimation for low-light image enhancement. CVPR 2020.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from xvertnet.methods import Method, register
from xvertnet.methods._torch import apply, load_weights, random_patches, save_model


def light_enhancement_curve(image: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
    """Apply LE(x) = x + A x (1 - x) once per map of ``curves`` (B, n, H, W), in order."""
    for index in range(curves.shape[1]):
        alpha = curves[:, index : index + 1]
        image = image + alpha * image * (1.0 - image)
    return image


class DceNet(nn.Module):
    """The DCE-Net of the paper, for ``channels`` input channels (1 here)."""

    def __init__(self, channels: int = 1, width: int = 32, iterations: int = 8):
        super().__init__()
        self.iterations, self.channels = iterations, channels
        conv = lambda i, o: nn.Conv2d(i, o, 3, padding=1)  # noqa: E731
        self.conv1, self.conv2, self.conv3, self.conv4 = (
            conv(channels, width),
            conv(width, width),
            conv(width, width),
            conv(width, width),
        )
        self.conv5, self.conv6 = conv(2 * width, width), conv(2 * width, width)
        self.conv7 = conv(2 * width, channels * iterations)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1 = F.relu(self.conv1(image))
        x2 = F.relu(self.conv2(x1))
        x3 = F.relu(self.conv3(x2))
        x4 = F.relu(self.conv4(x3))
        x5 = F.relu(self.conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.conv6(torch.cat([x2, x5], 1)))
        curves = torch.tanh(self.conv7(torch.cat([x1, x6], 1)))
        return light_enhancement_curve(image, curves), curves


def spatial_consistency_loss(original: torch.Tensor, enhanced: torch.Tensor) -> torch.Tensor:
    """Differences of 4x4 region means to their four neighbours should stay as in the input."""
    pool_o, pool_e = F.avg_pool2d(original.mean(1, keepdim=True), 4), F.avg_pool2d(enhanced.mean(1, keepdim=True), 4)
    loss = 0.0
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        d_o = pool_o - torch.roll(pool_o, shifts=(dy, dx), dims=(2, 3))
        d_e = pool_e - torch.roll(pool_e, shifts=(dy, dx), dims=(2, 3))
        loss = loss + (d_o - d_e).pow(2)[..., 1:-1, 1:-1].mean()
    return loss


def exposure_control_loss(enhanced: torch.Tensor, *, level: float = 0.6, patch: int = 16) -> torch.Tensor:
    return (F.avg_pool2d(enhanced.mean(1, keepdim=True), patch) - level).abs().mean()


def colour_constancy_loss(enhanced: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences between channel means; 0 for a single grey channel."""
    means = enhanced.mean(dim=(2, 3))
    channels = means.shape[1]
    loss = enhanced.new_zeros(())
    for a in range(channels):
        for b in range(a + 1, channels):
            loss = loss + (means[:, a] - means[:, b]).pow(2).mean()
    return loss


def illumination_smoothness_loss(curves: torch.Tensor) -> torch.Tensor:
    dx = (curves[..., :, 1:] - curves[..., :, :-1]).pow(2).mean()
    dy = (curves[..., 1:, :] - curves[..., :-1, :]).pow(2).mean()
    return dx + dy


@register
class ZeroDce(Method):
    name = "zerodce"
    trainable = True
    #: CPU-sized; the authors trained 200 epochs on 2,422 images of 512 x 512, batch 8, lr 1e-4.
    defaults = {
        "steps": 200,
        "batch_size": 8,
        "patch": 64,
        "lr": 1e-4,
        "width": 32,
        "iterations": 8,
        "exposure": 0.6,
        "weights": {"spatial": 1.0, "exposure": 10.0, "colour": 5.0, "smoothness": 200.0},
        "seed": 0,
        "device": "auto",
    }

    def __init__(self, params=None):
        super().__init__(params)
        torch.manual_seed(self.params["seed"])
        self.network = DceNet(1, self.params["width"], self.params["iterations"])

    def losses(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        enhanced, curves = self.network(image)
        weights = self.params["weights"]
        terms = {
            "spatial": spatial_consistency_loss(image, enhanced),
            "exposure": exposure_control_loss(enhanced, level=self.params["exposure"]),
            "colour": colour_constancy_loss(enhanced),
            "smoothness": illumination_smoothness_loss(curves),
        }
        terms["total"] = sum(weights[key] * value for key, value in terms.items())
        return terms

    def fit(self, crops: list[np.ndarray], out_dir: Path) -> dict:
        rng = np.random.default_rng(self.params["seed"])
        optimiser = torch.optim.Adam(self.network.parameters(), lr=self.params["lr"], weight_decay=1e-4)
        self.network.train()
        history, start = [], time.perf_counter()
        for _ in range(self.params["steps"]):
            batch = random_patches(crops, self.params["patch"], self.params["batch_size"], rng)
            terms = self.losses(batch)
            optimiser.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 0.1)
            optimiser.step()
            history.append(float(terms["total"].detach()))
        return save_model(
            self.network,
            out_dir,
            {
                "method": self.name,
                "params": self.params,
                "crops": len(crops),
                "first_loss": history[0],
                "last_loss": float(np.mean(history[-20:])),
                "seconds": time.perf_counter() - start,
            },
        )

    def load(self, model_dir: Path) -> None:
        load_weights(self.network, model_dir)

    def enhance(self, image: np.ndarray) -> np.ndarray:
        self.network.eval()
        enhanced, _ = apply(self.network, image, self.params["device"])
        return enhanced[0, 0].numpy()
