"""SRCNN, VDSR and the seed's VDSR-then-iterative-dehazing pipeline as enhancement methods (:mod:`xvertnet.methods.super_resolution.networks`,
:mod:`xvertnet.methods.super_resolution.dehaze`; seed ``srcnn_vdsr_benchmark.txt``).

Trained on the training crops (bicubic x2/x3/x4 pairs; synthetic haze for the dehazing network) and applied
at the native scale: the image is treated as a bicubic upscale and the network adds the detail it learnt to
restore. The papers trained for hours on a GPU (SRCNN: SGD, 10^8 back-propagations; VDSR: 80 epochs of
SGD with adjustable gradient clipping); the CPU defaults here are a few hundred Adam steps, recorded in
``model.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from xvertnet.methods import Method, register
from xvertnet.methods._torch import load_weights, save_model

SR_DEFAULTS = {"steps": 500, "batch_size": 8, "patch": 41, "lr": 1e-3, "scales": [2, 3, 4], "clip": 0.4, "seed": 0}


class _SuperResolution(Method):
    trainable = True

    def build(self) -> torch.nn.Module:  # pragma: no cover - overridden
        raise NotImplementedError

    def __init__(self, params=None):
        super().__init__(params)
        torch.manual_seed(self.params["seed"])
        self.network = self.build()

    def fit(self, crops: list[np.ndarray], out_dir: Path) -> dict:
        return save_model(self.network, out_dir, self.train(crops))

    def train(self, crops: list[np.ndarray]) -> dict:
        """Train the super-resolution network (:meth:`sr_network`) on bicubic pairs of ``crops``; its metadata."""
        from xvertnet.methods.super_resolution.networks import SRSchedule, parameter_count, train_sr

        start = time.perf_counter()
        p = self.params
        losses = train_sr(self.sr_network(), crops, SRSchedule.from_params(p))
        return {
            "method": self.name,
            "params": p,
            "crops": len(crops),
            "parameters": parameter_count(self.network),
            "first_loss": losses[0],
            "last_loss": float(np.mean(losses[-20:])),
            "seconds": time.perf_counter() - start,
        }

    def load(self, model_dir: Path) -> None:
        load_weights(self.network, model_dir)

    def super_resolve(self, upscaled: np.ndarray) -> np.ndarray:
        from xvertnet.methods.super_resolution.networks import apply_sr

        return apply_sr(self.sr_network(), upscaled)

    def sr_network(self) -> torch.nn.Module:
        return self.network

    def enhance(self, image: np.ndarray) -> np.ndarray:
        return self.super_resolve(image)


@register
class SrcnnMethod(_SuperResolution):
    name = "srcnn"
    defaults = {**SR_DEFAULTS, "steps": 2000, "patch": 33, "filters": [64, 32], "kernels": [9, 1, 5], "clip": None}

    def build(self):
        from xvertnet.methods.super_resolution.networks import Srcnn

        return Srcnn(filters=tuple(self.params["filters"]), kernels=tuple(self.params["kernels"]))


@register
class VdsrMethod(_SuperResolution):
    name = "vdsr"
    defaults = {**SR_DEFAULTS, "depth": 20, "filters": 64}

    def build(self):
        from xvertnet.methods.super_resolution.networks import Vdsr

        return Vdsr(depth=self.params["depth"], filters=self.params["filters"])


class _VdsrAndDehaze(torch.nn.Module):
    def __init__(self, params: dict):
        super().__init__()
        from xvertnet.methods.super_resolution.dehaze import DehazeNet
        from xvertnet.methods.super_resolution.networks import Vdsr

        self.vdsr = Vdsr(depth=params["depth"], filters=params["filters"])
        self.dehaze = DehazeNet(width=params["dehaze_width"], heads=params["dehaze_heads"])


@register
class VdsrDehaze(_SuperResolution):
    """The seed's pipeline: VDSR at the native scale, then the dehazing network applied iteratively with the
    stop rule of :func:`xvertnet.methods.super_resolution.dehaze.iterate_with_stop_rule`."""

    name = "vdsr-dehaze"
    defaults = {
        **VdsrMethod.defaults,
        "dehaze_steps": 1500,
        "dehaze_batch": 8,
        "dehaze_patch": 64,
        "dehaze_lr": 1e-3,
        "dehaze_width": 32,
        "dehaze_heads": 4,
        "max_iterations": 5,
        "psnr_drop": 1.0,
        "ssim_drop": 0.01,
    }

    def build(self):
        return _VdsrAndDehaze(self.params)

    def sr_network(self):
        return self.network.vdsr

    def train(self, crops: list[np.ndarray]) -> dict:
        """VDSR as in :class:`VdsrMethod`, then the dehazing network on synthetic haze of the same crops."""
        from xvertnet.methods.super_resolution.dehaze import train_dehaze

        metadata = super().train(crops)
        start = time.perf_counter()
        p = self.params
        losses = train_dehaze(
            self.network.dehaze,
            crops,
            steps=p["dehaze_steps"],
            batch=p["dehaze_batch"],
            patch=p["dehaze_patch"],
            lr=p["dehaze_lr"],
            seed=p["seed"],
        )
        return {
            **metadata,
            "dehaze_first_loss": losses[0],
            "dehaze_last_loss": float(np.mean(losses[-20:])),
            "seconds": metadata["seconds"] + time.perf_counter() - start,
        }

    def dehaze(self, image: np.ndarray) -> tuple[np.ndarray, int, list[dict]]:
        from xvertnet.methods.super_resolution.dehaze import dehaze_once, iterate_with_stop_rule

        p = self.params
        return iterate_with_stop_rule(
            lambda x: dehaze_once(self.network.dehaze, x),
            image,
            max_iterations=p["max_iterations"],
            psnr_drop=p["psnr_drop"],
            ssim_drop=p["ssim_drop"],
        )

    def enhance(self, image: np.ndarray) -> np.ndarray:
        return self.dehaze(self.super_resolve(image))[0].astype(np.float32)
