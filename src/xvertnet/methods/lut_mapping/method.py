"""Interpretable pixel-wise LUT mapping (Yang et al., GE Healthcare; :mod:`xvertnet.methods.lut_mapping.model`) as a method.

Trained for presentation consistency: every training crop is put in the standard presentation
(:func:`xvertnet.methods.lut_mapping.model.standard_presentation`), changed by random known presentation parameters
(:func:`xvertnet.methods.lut_mapping.model.random_presentation`) after on-the-fly augmentation (flips, quarter turns, a
small rotation and shear), and the network learns to predict the inverse parameters and the reference
(the paper's Eq. 1). Enhancing an image maps it toward the standard presentation; :meth:`LutMapping.maps`
gives the four interpretable maps.

The paper trained with Adam at lr 1e-5, batch 1, to convergence on 356 images on an A100; the CPU
defaults here (lr 1e-3, batch 4, 400 steps) are sized for the demo and recorded in ``model.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from xvertnet.methods import Method, register
from xvertnet.methods._torch import load_weights, save_model


def augment(image: np.ndarray, rng: np.random.Generator, *, rotation_deg: float, shear: float) -> np.ndarray:
    """A random flip, quarter turn, small rotation and shear of a square crop (reflected at the borders)."""
    from skimage.transform import AffineTransform, warp

    image = np.rot90(image[:, ::-1] if rng.random() < 0.5 else image, k=int(rng.integers(4)))
    centre = np.array(image.shape[::-1]) / 2 - 0.5
    transform = (
        AffineTransform(translation=-centre)
        + AffineTransform(
            rotation=np.deg2rad(rng.uniform(-rotation_deg, rotation_deg)), shear=rng.uniform(-shear, shear)
        )
        + AffineTransform(translation=centre)
    )
    return warp(np.ascontiguousarray(image), transform.inverse, mode="reflect", preserve_range=True).astype(np.float32)


@register
class LutMapping(Method):
    name = "lut-mapping"
    trainable = True
    defaults = {
        "steps": 400,
        "batch_size": 4,
        "lr": 1e-3,
        "downscale": 8,
        "levels": 5,
        "features": 32,
        "slope": [0.7, 1.4],
        "bias": [-0.15, 0.15],
        "centre": [0.35, 0.65],
        "width": [0.6, 1.6],
        "rotation_deg": 10.0,
        "shear": 0.1,
        "seed": 0,
        "device": "auto",
    }

    def __init__(self, params=None):
        super().__init__(params)
        from xvertnet.methods.lut_mapping.model import LutMappingNet

        torch.manual_seed(self.params["seed"])
        self.network = LutMappingNet(
            downscale=self.params["downscale"], levels=self.params["levels"], features=self.params["features"]
        )

    def presentation_change(self):
        """The ranges of the random ground-truth parameters (keys slope, bias, centre, width)."""
        from xvertnet.methods.lut_mapping.model import PresentationChange

        p = self.params
        return PresentationChange(
            slope=tuple(p["slope"]), bias=tuple(p["bias"]), centre=tuple(p["centre"]), width=tuple(p["width"])
        )

    def training_batch(
        self, crops: list[np.ndarray], rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(inputs, references, maps) of ``batch_size`` augmented crops under random known presentation changes."""
        from xvertnet.methods.lut_mapping.model import MAPS, random_presentation, standard_presentation

        inputs, references, maps = [], [], {k: [] for k in MAPS}
        change = self.presentation_change()
        for _ in range(self.params["batch_size"]):
            crop = crops[int(rng.integers(len(crops)))]
            reference = standard_presentation(
                augment(crop, rng, rotation_deg=self.params["rotation_deg"], shear=self.params["shear"])
            )
            degraded, truth = random_presentation(reference, rng, change)
            inputs.append(degraded)
            references.append(reference)
            for key in MAPS:
                maps[key].append(truth[key])
        stack = lambda arrays: torch.from_numpy(np.stack(arrays)[:, None])  # noqa: E731
        return stack(inputs), stack(references), {k: stack(v) for k, v in maps.items()}

    def fit(self, crops: list, out_dir: Path) -> dict:
        from xvertnet.methods.lut_mapping.model import lut_mapping_loss
        from xvertnet.model.device import select_device

        side = min(min(np.shape(c)[-2:]) for c in crops)
        crops = [
            np.asarray(c)[..., :side, :side] for c in crops
        ]  # one batch shape (the training crops are square already)
        device = select_device(self.params["device"])
        rng = np.random.default_rng(self.params["seed"])
        self.network.to(device).train()
        optimiser = torch.optim.Adam(self.network.parameters(), lr=self.params["lr"])
        history, start = [], time.perf_counter()
        for _ in range(self.params["steps"]):
            inputs, references, maps = self.training_batch(crops, rng)
            output, predicted = self.network(inputs.to(device))
            terms = lut_mapping_loss(
                output,
                predicted,
                references.to(device),
                None if maps is None else {k: v.to(device) for k, v in maps.items()},
            )
            optimiser.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimiser.step()
            history.append({k: float(v.detach()) for k, v in terms.items()})
        self.network.to("cpu").eval()
        last = {k: float(np.mean([h[k] for h in history[-20:]])) for k in history[-1]}
        return save_model(
            self.network,
            out_dir,
            {
                "method": self.name,
                "params": self.params,
                "crops": len(crops),
                "crop_side": side,
                "first_loss": history[0]["total"],
                "last_loss": last["total"],
                "last_terms": last,
                "seconds": time.perf_counter() - start,
            },
        )

    def load(self, model_dir: Path) -> None:
        load_weights(self.network, model_dir)

    @torch.no_grad()
    def maps(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The enhanced image and its four full-resolution maps (a, b, wc, ww) as numpy arrays."""
        from xvertnet.model.device import select_device

        device = select_device(self.params["device"])
        self.network.to(device).eval()
        output, maps = self.network(torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None].to(device))
        return output[0, 0].cpu().numpy(), {k: v[0, 0].cpu().numpy() for k, v in maps.items()}

    def enhance(self, image: np.ndarray) -> np.ndarray:
        return self.maps(image)[0]


@register
class LutMappingBone(LutMapping):
    """The same model trained toward the CT bone prior's targets (the LUT mapping's second configuration): the input is a
    training crop in the standard presentation under a random known presentation change, the reference the
    bone-emphasised projection of the same view (``B``, training patients only; ``demo.bone_emphasis``) in the
    standard presentation. No presentation change turns a DRR into its bone-emphasised version exactly, so there
    are no ground-truth maps and the loss is Eq. 1's image term alone; the maps stay free and still show where and
    how the model changed the grey levels."""

    name = "lut-mapping-bone"
    training_target = "B"

    def training_batch(
        self, pairs: list[np.ndarray], rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, None]:
        """(inputs, references, None) of ``batch_size`` augmented (crop, bone target) pairs, both under the same warp."""
        from xvertnet.methods.lut_mapping.model import random_presentation, standard_presentation

        inputs, references = [], []
        for _ in range(self.params["batch_size"]):
            pair = pairs[int(rng.integers(len(pairs)))]
            seed = int(rng.integers(2**32))  # the same flip, turn, rotation and shear for the crop and its target
            crop, bone = (
                augment(
                    image,
                    np.random.default_rng(seed),
                    rotation_deg=self.params["rotation_deg"],
                    shear=self.params["shear"],
                )
                for image in pair
            )
            degraded, _ = random_presentation(standard_presentation(crop), rng, self.presentation_change())
            inputs.append(degraded)
            references.append(standard_presentation(bone))
        stack = lambda arrays: torch.from_numpy(np.stack(arrays)[:, None])  # noqa: E731
        return stack(inputs), stack(references), None
