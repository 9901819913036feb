"""Interpretable pixel-wise LUT mapping (seed `interpretable_mapping_ge.txt`, Yang et al., GE Healthcare).

A ResUNet sees the image downsampled by a factor (4, 8 or 16) and predicts four parameter maps; they are
upsampled to full resolution and remap the input pixel by pixel. The paper shows the remap only as a
figure; this module fixes it as follows (docs/baselines.md ("LUT mapping")), for an input x in [0, 1]:

* **Regional LUT** (Eq. L1), per pixel slope ``a > 0`` and bias ``b``: a piecewise linear, monotonically
  increasing function, ``r = clip(a x + b, eps, 1 - eps)`` (flat below and above, linear between).
* **Global window** (Eq. L2), centre ``wc`` in (0, 1) and width ``ww > 0``, a sigmoid-like function:
  ``y = sigmoid((logit(r) - logit(wc)) / ww)``. It maps (0, 1) monotonically onto (0, 1), sends ``wc`` to
  0.5 with slope 1 / (4 ww wc (1 - wc)) there (1 / ww at wc = 0.5, as a linear window of width ww; ww < 1
  raises contrast, an S-curve),
  and is the identity at wc = 0.5, ww = 1, so the identity maps (a = 1, b = 0, wc = 0.5, ww = 1) give
  back the input exactly on [eps, 1 - eps].
* The output y is in (0, 1); stored as 16-bit it is ``round(65535 y)``, the paper's [0, 65535].

The network's four raw outputs z become the maps as ``a = exp(z_a)``, ``b = z_b``, ``wc = sigmoid(z_wc)``,
``ww = exp(z_ww)`` (zero outputs give the identity maps); the paper's maps are global for wc and ww (one
value per image), predicted here per pixel like a and b and averaged over the image (Eq. L2 applies one).

Ground truth without experts (:func:`random_presentation`): a reference image in the *standard
presentation* (:func:`standard_presentation`) is turned into an input by the exact inverse of Eqs. L1-L2
under known random parameters (smooth random fields a and b, one wc and ww per image); those parameters
are then the ground-truth maps, and the reference the ground-truth image.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

#: Keeps r away from 0 and 1, where logit is infinite (Eq. L1's clip).
EPS = 1e-4
#: The four maps, in the order of the network's output channels.
MAPS = ("a", "b", "wc", "ww")
#: The standard presentation's percentiles and the range they are put at.
STANDARD_PERCENTILES = (0.5, 99.5)
STANDARD_RANGE = (0.05, 0.95)


def regional_lut(x, a, b):
    """Eq. L1: the pixel-wise piecewise linear LUT ``clip(a x + b, eps, 1 - eps)`` (numpy or torch)."""
    r = a * x + b
    return torch.clamp(r, EPS, 1 - EPS) if isinstance(r, torch.Tensor) else np.clip(r, EPS, 1 - EPS)


def _logit(value):
    return torch.logit(value) if isinstance(value, torch.Tensor) else np.log(value) - np.log1p(-value)


def _sigmoid(value):
    return torch.sigmoid(value) if isinstance(value, torch.Tensor) else 0.5 * (1.0 + np.tanh(0.5 * value))


def global_window(r, wc, ww):
    """Eq. L2: the sigmoid-like window ``sigmoid((logit(r) - logit(wc)) / ww)`` (numpy or torch)."""
    return _sigmoid((_logit(r) - _logit(wc)) / ww)


def remap(x, a, b, wc, ww):
    """Eqs. L1 then L2 at every pixel: the enhanced image of input ``x`` under the maps."""
    return global_window(regional_lut(x, a, b), wc, ww)


def standard_presentation(image: np.ndarray) -> np.ndarray:
    """The reference look the model learns to produce: the image's 0.5 and 99.5 percentiles put at 0.05 and 0.95
    by one linear map (clipped), so every reference uses the same share of the grey range."""
    low, high = np.percentile(image, STANDARD_PERCENTILES)
    lo, hi = STANDARD_RANGE
    if high <= low:
        return np.full(image.shape, 0.5 * (lo + hi), np.float32)
    return np.clip(lo + (image - low) * (hi - lo) / (high - low), EPS, 1 - EPS).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class PresentationChange:
    """Ranges of the random ground-truth parameters (the inverse of the degradation applied to a reference)."""

    slope: tuple[float, float] = (0.7, 1.4)  # a, a smooth field
    bias: tuple[float, float] = (-0.15, 0.15)  # b, a smooth field
    centre: tuple[float, float] = (0.35, 0.65)  # wc, one per image
    width: tuple[float, float] = (0.6, 1.6)  # ww, one per image
    grid: int = 3  # control points per side of the smooth fields


def smooth_field(shape, low: float, high: float, rng: np.random.Generator, *, grid: int = 3) -> np.ndarray:
    """A low-frequency random field in [low, high]: ``grid`` x ``grid`` uniform control values, bicubic to ``shape``."""
    from skimage.transform import resize

    control = rng.uniform(low, high, (grid, grid))
    return np.clip(resize(control, shape, order=3, mode="edge", anti_aliasing=False), low, high).astype(np.float32)


def random_presentation(
    reference: np.ndarray, rng: np.random.Generator, change: PresentationChange = PresentationChange()
):
    """``(input, maps)``: an input that Eqs. L1-L2 with ``maps`` turn back into ``reference`` (exactly, where the
    input did not need clipping to [0, 1]); the maps are full-size float32 arrays keyed by :data:`MAPS`."""
    shape = reference.shape
    maps = {
        "a": smooth_field(shape, *change.slope, rng, grid=change.grid),
        "b": smooth_field(shape, *change.bias, rng, grid=change.grid),
        "wc": np.full(shape, rng.uniform(*change.centre), np.float32),
        "ww": np.full(shape, rng.uniform(*change.width), np.float32),
    }
    reference = np.clip(reference, EPS, 1 - EPS)
    r = _sigmoid(maps["ww"] * _logit(reference) + _logit(maps["wc"]))  # Eq. L2 inverted
    x = (r - maps["b"]) / maps["a"]  # Eq. L1 inverted
    return np.clip(x, 0.0, 1.0).astype(np.float32), maps


def maps_from_outputs(z: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four maps from the network's raw outputs (B, 4, H, W); zeros give the identity maps."""
    a = torch.exp(torch.clamp(z[:, 0:1], -3.0, 3.0))
    b = z[:, 1:2]
    wc = torch.clamp(torch.sigmoid(z[:, 2:3]), EPS, 1 - EPS)  # sigmoid reaches 1.0 in float32: logit(wc) finite
    ww = torch.exp(torch.clamp(z[:, 3:4], -3.0, 3.0))
    return {"a": a, "b": b, "wc": wc, "ww": ww}


class ResUNet(nn.Module):
    """The paper's ResUNet: ``levels`` resolutions, a residual block of three convolutions (MONAI ``ResidualUnit``)
    per level with ``features`` channels throughout, InstanceNorm and LeakyReLU; max-pool down, bilinear up with
    skip concatenation."""

    def __init__(self, in_channels: int = 1, out_channels: int = 4, *, levels: int = 5, features: int = 32):
        super().__init__()
        from monai.networks.blocks import ResidualUnit

        def block(channels_in):
            return ResidualUnit(
                spatial_dims=2,
                in_channels=channels_in,
                out_channels=features,
                strides=1,
                subunits=3,
                norm="INSTANCE",
                act=("LEAKYRELU", {"negative_slope": 0.01}),
            )

        self.levels = levels
        self.down = nn.ModuleList([block(in_channels if level == 0 else features) for level in range(levels)])
        self.up = nn.ModuleList([block(2 * features) for _ in range(levels - 1)])
        self.head = nn.Conv2d(features, out_channels, 1)
        nn.init.zeros_(self.head.weight)  # starts at the identity maps
        nn.init.zeros_(self.head.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips, x = [], image
        for level, block in enumerate(self.down):
            x = block(x)
            if level < self.levels - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for block in self.up:
            skip = skips.pop()
            x = block(
                torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1)
            )
        return self.head(x)


def pad_to_levels(image: torch.Tensor, multiple: int, *, reflect: bool = True) -> torch.Tensor:
    """``image`` padded at the bottom and right to a multiple of ``multiple`` per side, at least two of them (so the
    coarsest level of a ResUNet keeps 2 x 2 pixels, which InstanceNorm needs); reflected where the pad is narrower
    than the image, replicated otherwise."""
    height, width = image.shape[-2:]
    pad_h, pad_w = (max(2 * multiple, -(-n // multiple) * multiple) - n for n in (height, width))
    mode = "reflect" if reflect and min(height, width) > max(pad_h, pad_w) else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)


class LutMappingNet(nn.Module):
    """Downsample by ``downscale``, predict the maps with the ResUNet, upsample them, remap at full resolution.

    ``forward`` returns the output image and the full-resolution maps. Inputs of any size are padded (reflect,
    or replicate where the pad is wider than the image) to a multiple of ``downscale * 2 ** (levels - 1)``, at
    least two of them, and the outputs cropped back."""

    def __init__(self, *, downscale: int = 8, levels: int = 5, features: int = 32):
        super().__init__()
        self.downscale, self.levels = downscale, levels
        self.network = ResUNet(1, len(MAPS), levels=levels, features=features)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        height, width = image.shape[-2:]
        padded = pad_to_levels(image, self.downscale * 2 ** (self.levels - 1))  # the coarsest level: 1 / multiple
        small = F.interpolate(padded, scale_factor=1 / self.downscale, mode="area")
        z = F.interpolate(self.network(small), size=padded.shape[-2:], mode="bilinear", align_corners=False)
        maps = {k: v[..., :height, :width] for k, v in maps_from_outputs(z).items()}
        maps["wc"] = maps["wc"].mean(dim=(2, 3), keepdim=True).expand_as(maps["a"])  # one window per image (Eq. L2)
        maps["ww"] = maps["ww"].mean(dim=(2, 3), keepdim=True).expand_as(maps["a"])
        return remap(image, maps["a"], maps["b"], maps["wc"], maps["ww"]), maps


def lut_mapping_loss(
    output: torch.Tensor,
    maps: dict[str, torch.Tensor],
    target: torch.Tensor,
    target_maps: dict[str, torch.Tensor] | None,
) -> dict[str, torch.Tensor]:
    """The paper's Eq. 1: MSE of the image plus the MSE of each of the four maps; every term and the total.
    Without ``target_maps`` (a target that no presentation change produced exactly, e.g. the bone-emphasised
    DRR) only the image term: the maps are then free, and still say what the mapping did."""
    terms = {"image": F.mse_loss(output, target)}
    if target_maps is not None:
        terms.update({k: F.mse_loss(maps[k], target_maps[k]) for k in MAPS})
    terms["total"] = sum(terms.values())
    return terms
