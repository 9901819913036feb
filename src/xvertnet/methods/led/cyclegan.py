"""CycleGAN (Zhu et al. 2017) as LED's degradation model (seed ``led_cyclegan_diffusion_cxr.txt``).

Two ResNet generators (high -> low quality and back) and two PatchGAN discriminators, trained on unpaired
high- and low-quality images:

    L_GAN(G, D)  = E_y[(D(y) - 1)^2] + E_x[D(G(x))^2]      (LSGAN; the generator's term E_x[(D(G(x)) - 1)^2])
    L_cyc        = E_x|F(G(x)) - x|_1 + E_y|G(F(y)) - y|_1
    L_idt        = E_y|G(y) - y|_1 + E_x|F(x) - x|_1
    L_generators = L_GAN(G) + L_GAN(F) + lambda_cyc L_cyc + lambda_idt lambda_cyc L_idt   (lambda_cyc 10, lambda_idt 0.5)

The discriminators see a history of 50 generated images (:class:`ImagePool`, Shrivastava et al.). The
networks follow the CycleGAN paper's appendix (c7s1-k, dk, Rk, uk; C64-C128-C256-C512 with 4 x 4 kernels) and
are written here because no CycleGAN package is maintained; the widths and the number of residual blocks are
parameters so that the CPU demo can run a small version. Images are in [0, 1]; the networks work in [-1, 1].
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    """Rk: two 3 x 3 convolutions with reflection padding and InstanceNorm, added to the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-w, d2w, d4w, ``blocks`` x R4w, u2w, uw, c7s1-1 with tanh (9 blocks at 256 px in the paper)."""

    def __init__(self, *, width: int = 64, blocks: int = 9, channels: int = 1):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, width, 7), nn.InstanceNorm2d(width), nn.ReLU(True)]
        for factor in (1, 2):  # two stride-2 downsamplings
            layers += [
                nn.Conv2d(width * factor, width * factor * 2, 3, stride=2, padding=1),
                nn.InstanceNorm2d(width * factor * 2),
                nn.ReLU(True),
            ]
        layers += [ResidualBlock(width * 4) for _ in range(blocks)]
        for factor in (4, 2):
            layers += [
                nn.ConvTranspose2d(width * factor, width * factor // 2, 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(width * factor // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1], H and W multiples of 4, to the same shape in [-1, 1]."""
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """The 70 x 70 PatchGAN: C(w)-C(2w)-C(4w) at stride 2, C(8w) at stride 1, then a 1-channel 4 x 4 convolution;
    no InstanceNorm on the first layer, LeakyReLU 0.2. Each output value judges one 70 x 70 input patch."""

    def __init__(self, *, width: int = 64, channels: int = 1, layers: int = 3):
        super().__init__()
        modules = [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        current = width
        for index in range(1, layers + 1):
            out = width * min(2**index, 8)
            modules += [
                nn.Conv2d(current, out, 4, stride=2 if index < layers else 1, padding=1),
                nn.InstanceNorm2d(out),
                nn.LeakyReLU(0.2, True),
            ]
            current = out
        modules += [nn.Conv2d(current, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def receptive_field(network: nn.Module) -> int:
    """The receptive field (pixels) of the stacked convolutions of ``network``, from their kernels and strides."""
    field, jump = 1, 1
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            field += (module.kernel_size[0] - 1) * jump
            jump *= module.stride[0]
    return field


def lsgan_loss(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    """LSGAN: the mean squared distance of the discriminator's outputs from 1 (real) or 0 (fake)."""
    return F.mse_loss(prediction, torch.full_like(prediction, 1.0 if real else 0.0))


def cycle_consistency_loss(original: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """L_cyc for one direction: the mean absolute difference of an image and its round trip."""
    return (reconstructed - original).abs().mean()


class ImagePool:
    """A history of up to ``size`` generated images; a query returns, per image, either the image itself or (with
    probability one half, once the pool is full) a stored older one, which it replaces."""

    def __init__(self, size: int = 50, *, seed: int = 0):
        self.size, self.images, self.random = size, [], random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif self.random.random() < 0.5:
                index = self.random.randrange(self.size)
                out.append(self.images[index].clone())
                self.images[index] = image
            else:
                out.append(image)
        return torch.stack(out)


class CycleGan(nn.Module):
    """The four networks; ``degrade`` (high -> low) is what LED keeps."""

    def __init__(self, *, generator_width: int = 64, blocks: int = 9, discriminator_width: int = 64):
        super().__init__()
        self.degrade = ResnetGenerator(width=generator_width, blocks=blocks)  # G: high -> low
        self.restore = ResnetGenerator(width=generator_width, blocks=blocks)  # F: low -> high
        self.judge_low = PatchDiscriminator(width=discriminator_width)  # D_low
        self.judge_high = PatchDiscriminator(width=discriminator_width)  # D_high

    def generator_step(
        self, high: torch.Tensor, low: torch.Tensor, *, cycle_weight: float = 10.0, identity_weight: float = 0.5
    ):
        """The generators' loss (module docstring) and the fakes ``(fake_low, fake_high)`` for the discriminators."""
        fake_low, fake_high = self.degrade(high), self.restore(low)
        terms = {
            "gan": lsgan_loss(self.judge_low(fake_low), True) + lsgan_loss(self.judge_high(fake_high), True),
            "cycle": cycle_consistency_loss(high, self.restore(fake_low))
            + cycle_consistency_loss(low, self.degrade(fake_high)),
        }
        terms["identity"] = (
            ((self.degrade(low) - low).abs().mean() + (self.restore(high) - high).abs().mean())
            if identity_weight
            else torch.zeros(())
        )
        terms["total"] = (
            terms["gan"] + cycle_weight * terms["cycle"] + identity_weight * cycle_weight * terms["identity"]
        )
        return terms, fake_low, fake_high

    def discriminator_loss(
        self, high: torch.Tensor, low: torch.Tensor, fake_low: torch.Tensor, fake_high: torch.Tensor
    ) -> torch.Tensor:
        """Both discriminators' LSGAN losses, halved as in the reference implementation (fakes detached)."""
        return 0.5 * (
            lsgan_loss(self.judge_low(low), True)
            + lsgan_loss(self.judge_low(fake_low.detach()), False)
            + lsgan_loss(self.judge_high(high), True)
            + lsgan_loss(self.judge_high(fake_high.detach()), False)
        )
