"""ZSSR-style internal learning (Shocher et al., CVPR 2018), applied for enhancement at the native scale.

For each image separately: pairs are made from the image itself (its downscaled-then-
upscaled version as input, the image as target, with flips and 90-degree rotations); a
small residual CNN learns to restore the detail the downscaling removed; it is then applied
to the image itself, sharpening it at its native scale. In the workflow the image is the whole
canonical radiograph, as for every other method: the network learns from patches of the whole
image and is applied to all of it, and the evaluation ROIs are cut from its output. Training
costs the same for any image size (``steps`` batches of ``patch``-sized pairs); applying the
small network to a whole image costs a fraction of a second. CPU-sized by default (4 layers of
16 maps, 150 steps); the paper's network has 8 layers of 64 maps and trains for thousands
of steps (a GPU setting: ``layers: 8, width: 64, steps: 3000``).

Reference: A. Shocher, N. Cohen, M. Irani. "Zero-shot" super-resolution using deep internal
learning. CVPR 2018.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from xvertnet.methods import Method, register
from xvertnet.methods._torch import apply


class ResidualCnn(nn.Module):
    """``layers`` 3x3 convolutions with ReLU between; predicts a residual added to the input."""

    def __init__(self, layers: int = 4, width: int = 16):
        super().__init__()
        blocks, channels = [], 1
        for _ in range(layers - 1):
            blocks += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        blocks.append(nn.Conv2d(channels, 1, 3, padding=1))
        self.body = nn.Sequential(*blocks)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image + self.body(image)


def degrade(image: np.ndarray, scale: float) -> np.ndarray:
    """Downscale by ``scale`` (anti-aliased) and upscale back (cubic) to the same shape."""
    from skimage.transform import resize

    small = resize(
        image,
        (max(2, round(image.shape[0] / scale)), max(2, round(image.shape[1] / scale))),
        order=3,
        anti_aliasing=True,
        preserve_range=True,
    )
    return resize(small, image.shape, order=3, preserve_range=True).astype(np.float32)


@register
class Zssr(Method):
    name = "zssr"
    defaults = {
        "scale": 2.0,
        "layers": 4,
        "width": 16,
        "steps": 150,
        "batch_size": 8,
        "patch": 48,
        "lr": 1e-3,
        "seed": 0,
        "device": "auto",
    }

    def train_on(self, image: np.ndarray) -> ResidualCnn:
        """The internal-learning phase on one image; returns the trained network."""
        rng = np.random.default_rng(self.params["seed"])
        torch.manual_seed(self.params["seed"])
        network = ResidualCnn(self.params["layers"], self.params["width"])
        optimiser = torch.optim.Adam(network.parameters(), lr=self.params["lr"])
        source, target = degrade(image, self.params["scale"]), image.astype(np.float32)
        size = min(self.params["patch"], *image.shape)
        for _ in range(self.params["steps"]):
            inputs, targets = [], []
            for _ in range(self.params["batch_size"]):
                top, left = rng.integers(image.shape[0] - size + 1), rng.integers(image.shape[1] - size + 1)
                turns, flip = int(rng.integers(4)), bool(rng.integers(2))
                pair = [np.rot90(a[top : top + size, left : left + size], turns) for a in (source, target)]
                if flip:
                    pair = [np.fliplr(a) for a in pair]
                inputs.append(pair[0].copy())
                targets.append(pair[1].copy())
            prediction = network(torch.from_numpy(np.stack(inputs)[:, None]))
            loss = torch.nn.functional.l1_loss(prediction, torch.from_numpy(np.stack(targets)[:, None]))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        return network.eval()

    def enhance(self, image: np.ndarray) -> np.ndarray:
        network = self.train_on(image)
        return apply(network, image, self.params["device"])[0, 0].numpy()

    def super_resolve(self, image: np.ndarray) -> np.ndarray:
        """ZSSR's own task (its home ground): ``image`` upscaled by ``scale`` (cubic), then the detail the
        network learnt from the image's own downscaled copy added: the method as published."""
        from skimage.transform import resize

        network = self.train_on(image)
        shape = (round(image.shape[0] * self.params["scale"]), round(image.shape[1] * self.params["scale"]))
        upscaled = resize(image, shape, order=3, preserve_range=True).astype(np.float32)
        return np.clip(apply(network, upscaled, self.params["device"])[0, 0].numpy(), 0.0, 1.0)
