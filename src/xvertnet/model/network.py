"""XVertNet: a U-Net whose decoder is guided by the HFC image (journal paper, Secs. 3.2-3.3, Fig. 2).

* Encoder: ``depth`` levels of two 3x3 conv + batch norm + ReLU, each followed by 2x2 max
  pooling; a bottleneck of the same block. Widths base, 2 base, 4 base, ...
* Decoder: upsampling by 2, concatenation with the encoder's skip features, two 3x3 convs;
  then the guidance layer's maps at that scale are concatenated. The papers do not say how
  they upsample. ``upsample="bilinear"`` (default): bilinear interpolation then a 3x3 conv;
  ``"transpose"``: a 2x2 stride-2 transposed conv, the classic U-Net's, which leaves a
  pixel-scale checkerboard in the output (each output pixel of a 2x2 block gets another
  kernel weight; Odena et al. 2016): measured on the demo models as Nyquist peaks up to
  400x the median of the spectrum (``tests/model/test_model_losses.py``).
* Guidance layer (GL, Sec. 3.3.1): the HFC image Y -> LeakyReLU -> 3x3 conv -> max pooling
  to the decoder scale, as many maps as the decoder has there. At the last layer, base width
  64 gives the paper's 64 network + 64 GL = 128 maps. The GL maps are weighted
  ``2 * gl_weight`` against ``2 * (1 - gl_weight)`` for the network maps (0.5: plain
  concatenation; the earlier paper's 0.6/0.4 is ``gl_weight = 0.6``).
* Head: a 1x1 conv of the last 128 maps; ``"direct"`` (the paper): sigmoid of it;
  ``"anchored"``: sigmoid(logit(x) + conv), with the conv initialised to zero so training
  starts from the identity (docs/method.md), x being the first input channel.

``forward(inputs, hfc)`` returns ``(output, last_features)``; the feature loss L2 picks its
target among ``last_features`` (Eqs. 11-13).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from xvertnet.errors import InvalidValueError

OUTPUT_HEADS = ("direct", "anchored")
UPSAMPLING = ("bilinear", "transpose")
#: Keeps logit(x) finite for inputs at 0 or 1.
LOGIT_CLAMP = 1e-4


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture; stored with every model so it can be rebuilt. Paper scale: base_width 64, depth 4."""

    in_channels: int = 1
    base_width: int = 64
    depth: int = 4
    gl_weight: float = 0.5
    output_head: str = "direct"
    upsample: str = "bilinear"
    leaky_slope: float = 0.01

    def __post_init__(self):
        if self.depth < 1 or self.base_width < 1 or self.in_channels < 1:
            raise InvalidValueError(
                f"depth, base_width and in_channels must be >= 1, got {self.depth}, {self.base_width}, {self.in_channels}"
            )
        if not 0.0 <= self.gl_weight <= 1.0:
            raise InvalidValueError(f"gl_weight must be in [0, 1], got {self.gl_weight}")
        if self.output_head not in OUTPUT_HEADS:
            raise InvalidValueError(f"output_head must be one of {OUTPUT_HEADS}, got '{self.output_head}'")
        if self.upsample not in UPSAMPLING:
            raise InvalidValueError(f"upsample must be one of {UPSAMPLING}, got '{self.upsample}'")

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (2 ** depth)."""
        return 2**self.depth


class DoubleConv(nn.Sequential):
    """(3x3 conv, batch norm, ReLU) twice."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class GuidanceLayer(nn.Module):
    """HFC -> LeakyReLU -> 3x3 conv -> max pooling by ``2 ** level`` (Sec. 3.3.1)."""

    def __init__(self, out_channels: int, level: int, leaky_slope: float):
        super().__init__()
        self.activation = nn.LeakyReLU(leaky_slope)
        self.conv = nn.Conv2d(1, out_channels, 3, padding=1)
        self.pool = nn.MaxPool2d(2**level) if level > 0 else nn.Identity()

    def forward(self, hfc: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.activation(hfc)))


class DecoderStage(nn.Module):
    """Upsample, concatenate the skip features, two convs, then concatenate the GL maps."""

    def __init__(self, in_channels: int, out_channels: int, level: int, config: ModelConfig):
        super().__init__()
        if config.upsample == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, out_channels, 3, padding=1),
            )
        self.conv = DoubleConv(2 * out_channels, out_channels)
        self.guidance = GuidanceLayer(out_channels, level, config.leaky_slope)
        self.network_scale = 2.0 * (1.0 - config.gl_weight)
        self.guidance_scale = 2.0 * config.gl_weight

    def forward(self, features: torch.Tensor, skip: torch.Tensor, hfc: torch.Tensor) -> torch.Tensor:
        features = self.conv(torch.cat([self.up(features), skip], dim=1))
        return torch.cat([self.network_scale * features, self.guidance_scale * self.guidance(hfc)], dim=1)


class XVertNet(nn.Module):
    """U-Net with the internal guidance layer; see the module docstring."""

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        widths = [config.base_width * 2**level for level in range(config.depth + 1)]
        self.encoders = nn.ModuleList()
        channels = config.in_channels
        for width in widths[:-1]:
            self.encoders.append(DoubleConv(channels, width))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(widths[-2], widths[-1])
        self.decoders = nn.ModuleList()
        channels = widths[-1]
        for level in range(config.depth - 1, -1, -1):
            self.decoders.append(DecoderStage(channels, widths[level], level, config))
            channels = 2 * widths[level]  # network maps + GL maps
        self.head = nn.Conv2d(channels, 1, 1)
        if config.output_head == "anchored":
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, inputs: torch.Tensor, hfc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` (B, in_channels, H, W), ``hfc`` (B, 1, H, W) -> (output (B, 1, H, W), last 2*base maps)."""
        if inputs.ndim != 4 or inputs.shape[1] != self.config.in_channels:
            raise InvalidValueError(
                f"expected inputs of shape (B, {self.config.in_channels}, H, W), got {tuple(inputs.shape)}"
            )
        if hfc.shape[0] != inputs.shape[0] or hfc.shape[1] != 1 or hfc.shape[2:] != inputs.shape[2:]:
            raise InvalidValueError(
                f"expected hfc of shape ({inputs.shape[0]}, 1, {inputs.shape[2]}, {inputs.shape[3]}), got {tuple(hfc.shape)}"
            )
        multiple = self.config.multiple
        if inputs.shape[2] % multiple or inputs.shape[3] % multiple:
            raise InvalidValueError(
                f"height and width must be multiples of {multiple} (2 ** depth), got {tuple(inputs.shape[2:])}"
            )
        skips = []
        features = inputs
        for encoder in self.encoders:
            features = encoder(features)
            skips.append(features)
            features = self.pool(features)
        features = self.bottleneck(features)
        for decoder, skip in zip(self.decoders, reversed(skips)):
            features = decoder(features, skip, hfc)
        residual = self.head(features)
        if self.config.output_head == "anchored":
            anchor = torch.logit(inputs[:, :1].clamp(LOGIT_CLAMP, 1.0 - LOGIT_CLAMP))
            output = torch.sigmoid(anchor + residual.float())
        else:
            output = torch.sigmoid(residual.float())
        return output, features


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def pad_to_multiple(tensor: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (B, C, H, W) at the bottom/right to multiples of ``multiple``; return (padded, (H, W))."""
    height, width = tensor.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        tensor = F.pad(tensor, (0, pad_w, 0, pad_h), mode=mode)
    return tensor, (height, width)
