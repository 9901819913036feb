"""The GE seed's Table 1 on our data (docs/baselines.md ("LUT mapping")): presentation correction on held-out images.

Every model learns the same task from the same training images (the training split's whole canonical images,
centre-cropped to one shape) under the same budget: undo random known
presentation changes (:func:`xvertnet.methods.lut_mapping.model.random_presentation`) toward the standard presentation.
They are then scored on held-out images (PSNR, SSIM against the reference, seconds per image):

* ``resunet-ds8``: image-to-image, the ResUNet on the input downsampled by 8 predicting the image, upsampled
  (bilinear) to full resolution; MSE on the image.
* ``dlbc``: a global window only (Eq. L2 with one wc and ww per image, predicted directly by a small CNN on the
  downsampled image and global pooling); MSE on the image and on wc, ww.
* ``lut-bank``: the grey-level analogue of image-adaptive 3D LUTs (Zeng et al.): 8 basis 1-D LUTs of 33 points
  (initialised at the identity), mixed by weights a small CNN predicts from the downsampled image, applied by
  linear interpolation; MSE on the image.
* ``sup-dce``: Zero-DCE's DCE-Net and curves (:mod:`xvertnet.methods.zerodce`) trained supervised, MSE on the image,
  on random 64 x 64 patches of the training pairs (a full-resolution network: 256-px crops cost ~1.5 s a step here;
  Zero-DCE itself trains on patches).
* ``lut-mapping-ds{4,8,16}``: the proposed method (:class:`xvertnet.methods.lut_mapping.model.LutMappingNet`), the paper's Eq. 1.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from xvertnet.errors import XvertnetError
from xvertnet.methods.lut_mapping.model import (
    MAPS,
    LutMappingNet,
    PresentationChange,
    ResUNet,
    global_window,
    lut_mapping_loss,
    pad_to_levels,
    random_presentation,
    standard_presentation,
)

#: The paper's Table 1 (429 clinical images, A100): PSNR dB, SSIM, seconds.
PAPER = {
    "resunet-ds8": (25.10, 0.7652, 0.0275),
    "dlbc": (22.97, 0.7500, 0.0127),
    "lut-bank": (24.33, 0.8255, 0.0127),
    "sup-dce": (19.59, 0.7275, 0.0208),
    "lut-mapping-ds16": (24.36, 0.8508, 0.0259),
    "lut-mapping-ds8": (24.75, 0.8431, 0.0262),
    "lut-mapping-ds4": (24.89, 0.8461, 0.0281),
}
PAPER_NAMES = {
    "resunet-ds8": "ResUNet (downscale=8)",
    "dlbc": "DLBC",
    "lut-bank": "3DLUT",
    "sup-dce": "Sup-DCE",
    "lut-mapping-ds16": "Proposed (downscale=16)",
    "lut-mapping-ds8": "Proposed (downscale=8)",
    "lut-mapping-ds4": "Proposed (downscale=4)",
}


class _GlobalEncoder(nn.Module):
    """A small CNN on the image area-downsampled to 64 x 64, globally pooled to ``outputs`` numbers."""

    def __init__(self, outputs: int, width: int = 16):
        super().__init__()
        layers, channels = [], 1
        for _ in range(4):
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.InstanceNorm2d(width), nn.LeakyReLU(0.01)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, outputs)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(image, size=(64, 64), mode="area")
        return self.head(self.features(small).mean(dim=(2, 3)))


class ImageResUNet(nn.Module):
    """Image-to-image at ``downscale``: the ResUNet predicts the image at low resolution, upsampled at the end."""

    def __init__(self, downscale: int = 8, levels: int = 5, features: int = 32):
        super().__init__()
        self.downscale, self.multiple = downscale, 2 ** (levels - 1)
        self.network = ResUNet(1, 1, levels=levels, features=features)

    def forward(self, image):
        height, width = image.shape[-2:]
        small = F.interpolate(image, scale_factor=1 / self.downscale, mode="area")
        padded = pad_to_levels(small, self.multiple, reflect=False)
        predicted = (padded + self.network(padded))[..., : small.shape[-2], : small.shape[-1]]
        return torch.clamp(
            F.interpolate(predicted, size=(height, width), mode="bilinear", align_corners=False), 0, 1
        ), None


class Dlbc(nn.Module):
    """A global window only: wc = sigmoid(z0), ww = exp(z1) from :class:`_GlobalEncoder`, then Eq. L2."""

    def __init__(self):
        super().__init__()
        self.encoder = _GlobalEncoder(2)

    def forward(self, image):
        z = self.encoder(image)
        wc = torch.clamp(torch.sigmoid(z[:, 0]), 1e-4, 1 - 1e-4).view(-1, 1, 1, 1)
        ww = torch.exp(torch.clamp(z[:, 1], -3, 3)).view(-1, 1, 1, 1)
        r = torch.clamp(image, 1e-4, 1 - 1e-4)
        return global_window(r, wc, ww), {"wc": wc.expand_as(image), "ww": ww.expand_as(image)}


class LutBank(nn.Module):
    """``bases`` learnable 1-D LUTs of ``points`` nodes on [0, 1], mixed per image by softmax-free weights."""

    def __init__(self, bases: int = 8, points: int = 33):
        super().__init__()
        identity = torch.linspace(0, 1, points)
        self.luts = nn.Parameter(identity.repeat(bases, 1) + 0.01 * torch.randn(bases, points))
        self.encoder = _GlobalEncoder(bases)
        self.points = points

    def forward(self, image):
        weights = self.encoder(image) + 1.0 / self.luts.shape[0]  # starts at the mean of the bases (about the identity)
        lut = weights @ self.luts  # (B, points): one LUT per image
        position = torch.clamp(image, 0, 1) * (self.points - 1)
        low = torch.clamp(position.floor().long(), max=self.points - 2)
        fraction = position - low
        gathered_low = torch.gather(lut, 1, low.flatten(1)).view_as(image)
        gathered_high = torch.gather(lut, 1, (low + 1).flatten(1)).view_as(image)
        return torch.clamp(gathered_low + fraction * (gathered_high - gathered_low), 0, 1), None


class SupDce(nn.Module):
    """Zero-DCE's network and curves, trained with MSE to the reference."""

    def __init__(self):
        super().__init__()
        from xvertnet.methods.zerodce import DceNet

        self.network = DceNet(1, 32, 8)

    def forward(self, image):
        return self.network(image)[0], None


@dataclasses.dataclass(frozen=True)
class LutTableSettings:
    """The table's training budget and evaluation (steps, batch, lr and seed come from ``baselines.lut-mapping``)."""

    steps: int = 400
    batch_size: int = 4
    lr: float = 1e-3
    changes_per_image: int = 4
    seed: int = 0


#: Models trained on random patches of the training pairs (full-resolution networks); the others see whole crops.
PATCH = {"sup-dce": 64}

MODELS = {
    "resunet-ds8": lambda: ImageResUNet(8),
    "dlbc": Dlbc,
    "lut-bank": LutBank,
    "sup-dce": SupDce,
    "lut-mapping-ds16": lambda: LutMappingNet(downscale=16),
    "lut-mapping-ds8": lambda: LutMappingNet(downscale=8),
    "lut-mapping-ds4": lambda: LutMappingNet(downscale=4),
}


def common_shape(images: list[np.ndarray]) -> list[np.ndarray]:
    """The images centre-cropped to their smallest height and width, so they batch (canonical images differ in width)."""
    if not images:
        raise XvertnetError("the LUT mapping table needs training-split images")
    height, width = min(i.shape[0] for i in images), min(i.shape[1] for i in images)
    return [i[(i.shape[0] - height) // 2 :][:height, (i.shape[1] - width) // 2 :][:, :width] for i in images]


def _loss(name, output, maps, reference, truth):
    if name.startswith("lut-mapping"):
        return lut_mapping_loss(output, maps, reference, truth)["total"]
    loss = F.mse_loss(output, reference)
    if maps:
        loss = loss + sum(F.mse_loss(maps[k], truth[k]) for k in maps)
    return loss


def _batch(crops, rng, batch_size, change):
    references = [standard_presentation(crops[int(rng.integers(len(crops)))]) for _ in range(batch_size)]
    pairs = [random_presentation(reference, rng, change) for reference in references]
    stack = lambda arrays: torch.from_numpy(np.stack(arrays)[:, None].astype(np.float32))  # noqa: E731
    return stack([p[0] for p in pairs]), stack(references), {k: stack([p[1][k] for p in pairs]) for k in MAPS}


def train_model(
    name: str, crops: list[np.ndarray], settings: LutTableSettings, change: PresentationChange
) -> tuple[nn.Module, float]:
    """One model of the table trained on ``crops``; returns it and its training seconds."""
    torch.manual_seed(settings.seed)
    model = MODELS[name]()
    rng = np.random.default_rng(settings.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr)
    start = time.perf_counter()
    model.train()
    for _ in range(settings.steps):
        inputs, references, truth = _batch(crops, rng, settings.batch_size, change)
        if name in PATCH:  # the same window of inputs, references and maps
            size = PATCH[name]
            top, left = (int(rng.integers(n - size + 1)) for n in inputs.shape[-2:])
            window = (Ellipsis, slice(top, top + size), slice(left, left + size))
            inputs, references, truth = inputs[window], references[window], {k: v[window] for k, v in truth.items()}
        output, maps = model(inputs)
        loss = _loss(name, output, maps, references, truth)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return model.eval(), time.perf_counter() - start


def evaluate(
    models: dict[str, nn.Module], images: dict[str, np.ndarray], settings: LutTableSettings, change: PresentationChange
) -> pd.DataFrame:
    """One row per model, image and change: PSNR and SSIM of the output against the reference, seconds, and the
    same for the unchanged input (``input``), on held-out whole images."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(settings.seed + 1)
    rows = []
    for image_id, image in images.items():
        reference = standard_presentation(image)
        for index in range(settings.changes_per_image):
            degraded, _ = random_presentation(reference, rng, change)
            outputs = {"input": (degraded, 0.0)}
            for name, model in models.items():
                with torch.no_grad():
                    start = time.perf_counter()
                    output = model(torch.from_numpy(degraded)[None, None])[0][0, 0].numpy()
                    outputs[name] = (output, time.perf_counter() - start)
            for name, (output, seconds) in outputs.items():
                rows.append(
                    {
                        "method": name,
                        "image_id": image_id,
                        "change": index,
                        "seconds": seconds,
                        "psnr": peak_signal_noise_ratio(reference, output.astype(np.float32), data_range=1.0),
                        "ssim": structural_similarity(reference, output.astype(np.float32), data_range=1.0),
                    }
                )
    return pd.DataFrame(rows)


def table_markdown(rows: pd.DataFrame, train_seconds: dict[str, float]) -> str:
    """Mean ± std per method beside the paper's values."""
    lines = [
        "| method | paper's name | PSNR (dB) | SSIM | s / image | train s | paper PSNR | paper SSIM | paper s (A100) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, part in rows.groupby("method", sort=False):
        paper = PAPER.get(name)
        cells = [
            name,
            PAPER_NAMES.get(name, "(no change undone)"),
            f"{part['psnr'].mean():.2f} ± {part['psnr'].std(ddof=1):.2f}",
            f"{part['ssim'].mean():.4f} ± {part['ssim'].std(ddof=1):.4f}",
            f"{part['seconds'].mean():.3f}",
            f"{train_seconds.get(name, 0.0):.0f}",
        ]
        cells += [f"{paper[0]:.2f}", f"{paper[1]:.4f}", f"{paper[2]:.4f}"] if paper else ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    n = rows.groupby("method").size().iloc[0]
    return "\n".join(lines) + f"\n\nn = {n} (held-out images x random presentation changes) per method.\n"
