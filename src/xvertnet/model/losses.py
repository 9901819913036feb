"""XVertNet's losses (journal paper, Sec. 3.5).

* Gradient correlation (Eqs. 8-9): GC(A, B) = (NCC(dA/dx, dB/dx) + NCC(dA/dy, dB/dy)) / 2,
  per image of a batch, with forward differences as gradients. The NCC is guarded for flat
  patches with a guard: cov / sqrt(var_a * var_b + eps), in fp32, eps = 1e-12
  (with std_a * std_b + eps the gradient is NaN for a flat output; a larger eps biases the
  loss, since HFC gradient variance is about 4e-4).
* L1 = 1 - GC(output, HFC) (Eq. 10).
* Feature entropy (Eqs. 11-12): each map min-max scaled to [0, 1], K bins, Shannon entropy.
* L2 = MSE(output, c*) with c* the highest-entropy map of the last layer (Eq. 13).

Two optional terms of this project's design study (docs/design-study.md ("Design study")), off by
default, so that ``xvertnet-paper`` stays the paper's recipe:

* Blind-spot invariance (Noise2Self / Noise2Same, Batson & Royer 2019, Xie et al. 2020):
  a random 1-in-s^2 grid J of pixels is replaced in every input channel (and in the HFC the
  guidance layers see) by the mean of its 8 neighbours, and
  L_bs = sqrt(mean_{j in J} (f(x)_j - f(x_J)_j)^2 + eps)                          (S1)
  penalises the output at j depending on the input at j, i.e. copying pixel noise.
* Band-pass contrast at the vertebral scale: with DoG(I) = G_s1 * I - G_s2 * I (sigmas in
  pixels of the canonical height, where a vertebral body is about 28 px tall) and
  E(I) = sqrt(mean DoG(I)^2 + eps) per image,
  L_bp = max(0, log g - log(E(output) / E(input)))                                  (S2)
  rewards raising the band-pass energy of the output over the network's input up to the
  gain g, and no further (beyond g the term is 0, so noise cannot be traded for it).
* CT bone prior: on training crops that have a bone-emphasised target B (the same view
  projected with the attenuation of bone raised; ``demo.bone_emphasis``, training patients only)
  L_bone = mean over those crops of (1 - NCC(output, B))                                  (S3)
  with the NCC of Eq. 9 (offset- and scale-free, so only the pattern is pulled toward B).
* Displayed vertebral-scale CNR: with the display D(I) = clip((I - lo) / (hi - lo), 0, 1) through the
  window [lo, hi] of the image's own 1st and 99th percentiles (held fixed for the gradient), a probe
  of Gaussian noise n (``probe`` x the input's standard deviation) added to the network's input x,
  and E of Eq. S2 at the vertebral scale,
  CNR(f) = E(D(f(x))) / E(D(f(x + n)) - D(f(x)))   (the noise: f(x)'s window for both)
  L_dcnr = max(0, log g - log(CNR(f) / CNR(identity)))                                   (S4)
  rewards contrast at the scale of a vertebral body relative to the noise at that scale, on the
  displayed image: a plain gain leaves the ratio at 1 (the window cancels it), noise amplified at
  that scale lowers it, and a region pushed beyond the window (saturation) loses its contrast and
  its gradient, so it counts as lost signal. Beyond the gain g the term is 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

#: Flat-patch guard of the NCC denominator (docs/method.md).
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


def feature_loss(
    output: torch.Tensor, features: torch.Tensor, *, bins: int = 256, detach_target: bool = False
) -> torch.Tensor:
    """L2 = MSE(output, c*) (Eq. 13); ``detach_target`` stops the gradient into c*."""
    target = most_informative_map(features, bins=bins)
    if detach_target:
        target = target.detach()
    return F.mse_loss(output.float(), target.float())


#: Guard inside the square roots of Eqs. S1 and S2 (finite gradients where the difference or the band is 0).
ROOT_EPS = 1e-12


def blind_spot_mask(shape, spacing: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """J of Eq. S1: a (B, 1, H, W) boolean mask with one pixel in every ``spacing`` x ``spacing`` cell,
    at a random offset per image (the same offset over the image, as a grid)."""
    if spacing < 2:
        raise ValueError(f"blind-spot spacing must be >= 2, got {spacing}")
    batch, _, height, width = shape
    offsets = torch.randint(0, spacing, (batch, 2), generator=generator)
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    mask = ((rows - offsets[:, 0].view(-1, 1, 1)) % spacing == 0) & (
        (cols - offsets[:, 1].view(-1, 1, 1)) % spacing == 0
    )
    return mask.unsqueeze(1)


def blind_spot_input(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``image`` (B, C, H, W) with the pixels of ``mask`` replaced by the mean of their 8 neighbours (x_J of Eq. S1)."""
    kernel = torch.full((3, 3), 1.0 / 8.0, dtype=image.dtype, device=image.device)
    kernel[1, 1] = 0.0
    channels = image.shape[1]
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    neighbours = F.conv2d(padded, kernel.expand(channels, 1, 3, 3), groups=channels)
    return torch.where(mask.to(image.device), neighbours, image)


def blind_spot_loss(output: torch.Tensor, masked_output: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_bs of Eq. S1: RMS difference at the masked pixels between the outputs on the full and the masked input."""
    _check_pair(output, masked_output)
    selected = mask.to(output.device).expand_as(output)
    if not bool(selected.any()):
        raise ValueError("the blind-spot mask selects no pixel")
    precision = torch.promote_types(output.dtype, torch.float32)  # at least fp32 (AMP), double stays double
    difference = (output.to(precision) - masked_output.to(precision))[selected]
    return torch.sqrt(difference.pow(2).mean() + ROOT_EPS)


def band_pass(image: torch.Tensor, sigmas: tuple[float, float]) -> torch.Tensor:
    """DoG(I) = G_s1 * I - G_s2 * I of a (B, C, H, W) tensor (MONAI's Gaussian kernels, replicated borders)."""
    from monai.networks.layers import separable_filtering
    from monai.networks.layers.convutils import gaussian_1d

    low, high = sigmas
    if not 0 < low < high:
        raise ValueError(f"band-pass sigmas must satisfy 0 < s1 < s2, got {sigmas}")
    image = image.float()
    blurred = []
    for sigma in (low, high):
        kernel = gaussian_1d(torch.tensor(float(sigma)), truncated=4.0, approx="sampled").to(image.device)
        kernel = kernel / kernel.sum()  # unit gain, so that the difference passes no constant
        blurred.append(separable_filtering(image, [kernel, kernel], mode="replicate"))
    return blurred[0] - blurred[1]


def band_pass_energy(image: torch.Tensor, sigmas: tuple[float, float]) -> torch.Tensor:
    """E(I) of Eq. S2 per image: sqrt(mean DoG(I)^2 + eps). Returns (B,)."""
    return torch.sqrt(band_pass(image, sigmas).flatten(1).pow(2).mean(dim=1) + ROOT_EPS)


def band_pass_contrast_loss(
    output: torch.Tensor, reference: torch.Tensor, *, sigmas: tuple[float, float], gain: float
) -> torch.Tensor:
    """L_bp of Eq. S2, averaged over the batch: max(0, log gain - log(E(output) / E(reference)))."""
    _check_pair(output, reference)
    if gain <= 0:
        raise ValueError(f"band-pass gain must be > 0, got {gain}")
    ratio = torch.log(band_pass_energy(output, sigmas)) - torch.log(band_pass_energy(reference, sigmas).detach())
    return F.relu(math.log(gain) - ratio).mean()


def display_window(image: torch.Tensor, percentiles=(1.0, 99.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) of every image of a (B, 1, H, W) batch: its own percentiles, (B, 1, 1, 1), without gradient."""
    flat = image.detach().float().flatten(1)
    levels = torch.tensor([p / 100.0 for p in percentiles], device=flat.device)
    low, high = torch.quantile(flat, levels, dim=1)
    return low.view(-1, 1, 1, 1), torch.maximum(high, low + 1e-6).view(-1, 1, 1, 1)


def displayed_band_cnr(
    image: torch.Tensor, noisy: torch.Tensor, sigmas: tuple[float, float], window=None
) -> torch.Tensor:
    """CNR of Eq. S4 per image: band-pass energy of the displayed ``image`` over that of the displayed difference
    ``noisy - image``, both through ``image``'s window (its own 1st-99th percentiles unless given). Returns (B,)."""
    _check_pair(image, noisy)
    low, high = window if window is not None else display_window(image)
    shown = ((image.float() - low) / (high - low)).clamp(0.0, 1.0)
    shown_noisy = ((noisy.float() - low) / (high - low)).clamp(0.0, 1.0)
    return band_pass_energy(shown, sigmas) / band_pass_energy(shown_noisy - shown, sigmas)


def displayed_cnr_loss(
    output: torch.Tensor,
    noisy_output: torch.Tensor,
    reference: torch.Tensor,
    noisy_reference: torch.Tensor,
    *,
    sigmas: tuple[float, float],
    gain: float,
) -> torch.Tensor:
    """L_dcnr of Eq. S4, averaged over the batch: max(0, log gain - log(CNR(output) / CNR(reference))), the outputs
    on the input and on the input with the noise probe, the reference being that input and that noisy input."""
    if gain <= 0:
        raise ValueError(f"displayed-CNR gain must be > 0, got {gain}")
    ratio = torch.log(displayed_band_cnr(output, noisy_output, sigmas)) - torch.log(
        displayed_band_cnr(reference, noisy_reference, sigmas).detach()
    )
    return F.relu(math.log(gain) - ratio).mean()


def noise_probe(image: torch.Tensor, probe: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian noise for Eq. S4: ``probe`` x each image's standard deviation, the shape of ``image``'s first
    channel (B, 1, H, W); from ``generator`` (None: the global RNG)."""
    first = image[:, :1].float()
    spread = first.flatten(1).std(dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)
    return probe * spread * torch.randn(first.shape, generator=generator).to(image.device)


def bone_prior_loss(output: torch.Tensor, bone: torch.Tensor) -> torch.Tensor | None:
    """L_bone of Eq. S3 over the images of the batch whose target is finite (a crop without a target is NaN);
    None when no image has one."""
    _check_pair(output, bone)
    has = torch.isfinite(bone.flatten(1)).all(dim=1)
    if not bool(has.any()):
        return None
    return (1.0 - normalised_cross_correlation(output[has], bone[has])).mean()


class XVertNetLoss(nn.Module):
    """w_gc * L1 (+ w_feature * L2 in phase 2) (Eq. 14 with configurable weights; the paper sums them),
    + w_bp * L_bp (Eq. S2) when ``band_pass_weight`` > 0 and + w_bone * L_bone (Eq. S3) when ``bone_weight`` > 0,
    in both phases. The blind-spot term (Eq. S1) and the displayed-CNR term (Eq. S4) need a second forward pass
    and are added by the training loop (:mod:`xvertnet.model.training`)."""

    def __init__(
        self,
        *,
        gc_weight: float = 1.0,
        feature_weight: float = 1.0,
        bins: int = 256,
        detach_target: bool = False,
        band_pass_weight: float = 0.0,
        band_pass_sigmas: tuple[float, float] = (4.0, 12.0),
        band_pass_gain: float = 2.0,
        bone_weight: float = 0.0,
    ):
        super().__init__()
        self.bone_weight = bone_weight
        self.gc_weight, self.feature_weight = gc_weight, feature_weight
        self.bins, self.detach_target = bins, detach_target
        self.band_pass_weight, self.band_pass_sigmas, self.band_pass_gain = (
            band_pass_weight,
            tuple(band_pass_sigmas),
            band_pass_gain,
        )

    def forward(
        self,
        output,
        hfc,
        features,
        *,
        with_feature_loss: bool,
        reference: torch.Tensor | None = None,
        bone: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``reference``: the network's input the band-pass term compares with (B, 1, H, W); needed when it is on.
        ``bone``: the bone prior's targets (NaN where a crop has none), used when ``bone_weight`` > 0."""
        l1 = gradient_correlation_loss(output, hfc)
        terms = {"l1": l1}
        total = self.gc_weight * l1
        if with_feature_loss:
            l2 = feature_loss(output, features, bins=self.bins, detach_target=self.detach_target)
            terms["l2"] = l2
            total = total + self.feature_weight * l2
        if self.band_pass_weight > 0:
            if reference is None:
                raise ValueError("the band-pass term needs the reference input")
            terms["band_pass"] = band_pass_contrast_loss(
                output, reference, sigmas=self.band_pass_sigmas, gain=self.band_pass_gain
            )
            total = total + self.band_pass_weight * terms["band_pass"]
        if self.bone_weight > 0 and bone is not None:
            term = bone_prior_loss(output, bone)
            if term is not None:
                terms["bone"] = term
                total = total + self.bone_weight * term
        terms["total"] = total
        return terms
