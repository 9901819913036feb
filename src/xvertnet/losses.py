"""XVertNet's losses (journal paper, Sec. 3.5).

* Gradient correlation (Eqs. 8-9): GC(A, B) = (NCC(dA/dx, dB/dx) + NCC(dA/dy, dB/dy)) / 2,
  per image of a batch, with forward differences as gradients. The NCC is guarded for flat
  patches as METHOD.md prescribes: cov / sqrt(var_a * var_b + eps), in fp32, eps = 1e-12
  (with std_a * std_b + eps the gradient is NaN for a flat output; a larger eps biases the
  loss, since HFC gradient variance is about 4e-4).
* L1 = 1 - GC(output, HFC) (Eq. 10).
* Feature entropy (Eqs. 11-12): each map min-max scaled to [0, 1], K bins, Shannon entropy.
* L2 = MSE(output, c*) with c* the highest-entropy map of the last layer (Eq. 13).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Flat-patch guard of the NCC denominator (METHOD.md).
NCC_EPS = 1e-12


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 4 or a.shape != b.shape:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[-1] < 2 or a.shape[-2] < 2:
        raise ValueError(f"expected images of at least 2x2 pixels, got {tuple(a.shape[-2:])}")


def normalised_cross_correlation(a: torch.Tensor, b: torch.Tensor, *, eps: float = NCC_EPS) -> torch.Tensor:
    """NCC per image (Eq. 9) over (C, H, W): cov / sqrt(var_a var_b + eps), computed in fp32. Returns (B,)."""
    a = a.float().flatten(1)
    b = b.float().flatten(1)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    covariance = (a * b).mean(dim=1)
    return covariance / torch.sqrt(a.pow(2).mean(dim=1) * b.pow(2).mean(dim=1) + eps)


def image_gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along x (width) and y (height) of a (B, C, H, W) tensor."""
    return image[..., :, 1:] - image[..., :, :-1], image[..., 1:, :] - image[..., :-1, :]


def gradient_correlation(a: torch.Tensor, b: torch.Tensor, *, eps: float = NCC_EPS) -> torch.Tensor:
    """GC(A, B) per image (Eq. 8), in [-1, 1]. Returns (B,)."""
    _check_pair(a, b)
    a_x, a_y = image_gradients(a)
    b_x, b_y = image_gradients(b)
    return 0.5 * (normalised_cross_correlation(a_x, b_x, eps=eps) + normalised_cross_correlation(a_y, b_y, eps=eps))


def gradient_correlation_loss(output: torch.Tensor, hfc: torch.Tensor, *, eps: float = NCC_EPS) -> torch.Tensor:
    """L1 = 1 - GC(output, HFC), averaged over the batch (Eq. 10)."""
    return 1.0 - gradient_correlation(output, hfc, eps=eps).mean()


def feature_map_entropy(features: torch.Tensor, *, bins: int = 256) -> torch.Tensor:
    """Entropy of every map (Eqs. 11-12): min-max to [0, 1], ``bins`` bins, natural log. (B, C, H, W) -> (B, C)."""
    if features.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) feature maps, got {tuple(features.shape)}")
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    with torch.no_grad():
        flat = features.detach().float().flatten(2)
        low = flat.amin(dim=2, keepdim=True)
        high = flat.amax(dim=2, keepdim=True)
        scaled = (flat - low) / (high - low).clamp_min(1e-12)
        index = (scaled * bins).long().clamp_(0, bins - 1)
        counts = torch.zeros(*flat.shape[:2], bins, device=flat.device)
        counts.scatter_add_(2, index, torch.ones_like(scaled))
        probability = counts / flat.shape[2]
        return -(probability * torch.log(probability.clamp_min(1e-30))).sum(dim=2)


def most_informative_map(features: torch.Tensor, *, bins: int = 256) -> torch.Tensor:
    """c*: per image, the map with the highest entropy. (B, C, H, W) -> (B, 1, H, W), differentiable."""
    choice = feature_map_entropy(features, bins=bins).argmax(dim=1)
    return features[torch.arange(features.shape[0], device=features.device), choice].unsqueeze(1)


def feature_loss(output: torch.Tensor, features: torch.Tensor, *, bins: int = 256, detach_target: bool = False) -> torch.Tensor:
    """L2 = MSE(output, c*) (Eq. 13); ``detach_target`` stops the gradient into c*."""
    target = most_informative_map(features, bins=bins)
    if detach_target:
        target = target.detach()
    return F.mse_loss(output.float(), target.float())


class XVertNetLoss(nn.Module):
    """w_gc * L1 (+ w_feature * L2 in phase 2) (Eq. 14 with configurable weights; the paper sums them)."""

    def __init__(self, *, gc_weight: float = 1.0, feature_weight: float = 1.0, bins: int = 256, detach_target: bool = False):
        super().__init__()
        self.gc_weight, self.feature_weight = gc_weight, feature_weight
        self.bins, self.detach_target = bins, detach_target

    def forward(self, output, hfc, features, *, with_feature_loss: bool) -> dict[str, torch.Tensor]:
        l1 = gradient_correlation_loss(output, hfc)
        terms = {"l1": l1}
        total = self.gc_weight * l1
        if with_feature_loss:
            l2 = feature_loss(output, features, bins=self.bins, detach_target=self.detach_target)
            terms["l2"] = l2
            total = total + self.feature_weight * l2
        terms["total"] = total
        return terms
