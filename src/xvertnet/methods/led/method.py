"""LED (seed ``led_cyclegan_diffusion_cxr.txt``): learn how good radiographs become bad ones, then invert it.

1. Split the training crops into unpaired high- and low-quality sets without labels (:func:`quality_sets`).
2. Train a CycleGAN between them (:mod:`xvertnet.methods.led.cyclegan`) and keep its degradation generator G (high -> low).
3. Degrade the high-quality crops with G: synthetic (degraded, clean) pairs.
4. Train a conditional DDPM on those pairs (:mod:`xvertnet.methods.led.conditional_diffusion`; MONAI's network and
   schedulers), with an EMA of its weights and early stopping on validation pairs made the same way from the
   validation split's high-quality crops.
5. Enhance: DDIM sampling conditioned on the image, from the condition noised to ``start_fraction`` of T.
   Unless the configuration fixes it, ``start_fraction`` is chosen after training from ``START_CHOICES`` by the
   PSNR of the restored validation pairs against their clean crops (never on test images), and recorded.

The seed trained on 256 x 256 PadChest images on a GPU (CycleGAN lr 1e-4, 9 residual blocks; diffusion lr
1e-5, batch 32); the CPU defaults here (64-pixel patches, small networks, a few hundred steps) are sized for
``make led`` and recorded in ``model.json``; the schema gives the paper-scale values.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from xvertnet.methods import Method, register
from xvertnet.methods._torch import load_weights, random_patches, save_model
from xvertnet.model.network import pad_to_multiple

log = logging.getLogger(__name__)

#: Demo conditions (CT-derived DRRs): clean DRRs are high quality, these degradations low quality; 8-bit
#: quantisation is neither (it changes the grey levels, not the visibility LED restores).
HIGH_CONDITIONS = ("standard", "real")
#: Candidate starts of the sampler, chosen on the validation pairs when ``start_fraction`` is not set.
START_CHOICES = (0.1, 0.2, 0.3, 0.5, 1.0)
LOW_CONDITIONS = ("low_dose", "blur", "low_contrast")


def noise_level(image: np.ndarray) -> float:
    """The exposure/noise proxy of unlabelled images: scikit-image's wavelet estimate of the noise sigma."""
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(np.asarray(image, np.float64)))


def quality_sets(records: list[dict], *, noise_threshold: float | None = None) -> tuple[list[dict], list[dict], str]:
    """``(high, low, rule)``: unpaired high- and low-quality records (dicts with ``crop`` and the manifest's
    ``patient``, ``view``, ``condition``, ``source``).

    With condition labels (the demo's DRRs), each (patient, view) is given one role, alternating in sorted
    order, so that no view is in both sets: its clean DRR goes to the high set if the role is high, its
    low-dose, blurred and low-contrast DRRs to the low set if it is low; real radiographs are high. Without
    labels, the noise proxy (:func:`noise_level`) decides: at most ``noise_threshold`` is high, above it low
    (default threshold: the median over the crops, so that the two sets have equal size).
    """
    from xvertnet.io.datasets import is_real_radiograph

    def real(record):
        return is_real_radiograph(record.get("condition", ""), record.get("source", "")) and record.get(
            "condition", ""
        ) in ("real", "")

    labelled = [r for r in records if r.get("condition") in (*HIGH_CONDITIONS, *LOW_CONDITIONS) and not real(r)]
    if labelled:
        groups = sorted({(str(r.get("patient", "")), str(r.get("view", ""))) for r in labelled})
        high_role = {group for index, group in enumerate(groups) if index % 2 == 0}
        group = lambda r: (str(r.get("patient", "")), str(r.get("view", "")))  # noqa: E731
        high = [r for r in labelled if r["condition"] in HIGH_CONDITIONS and group(r) in high_role]
        low = [r for r in labelled if r["condition"] in LOW_CONDITIONS and group(r) not in high_role]
        high += [r for r in records if real(r)]
        return high, low, "condition labels; views alternate between the sets; real radiographs high"
    levels = np.array([noise_level(r["crop"]) for r in records])
    threshold = float(np.median(levels)) if noise_threshold is None else noise_threshold
    high = [r for r, level in zip(records, levels) if level <= threshold]
    low = [r for r, level in zip(records, levels) if level > threshold]
    return high, low, f"noise proxy: estimated sigma <= {threshold:.4g} high"


def patch_batch(
    crops: list[np.ndarray],
    count: int,
    size: int,
    rng: np.random.Generator,
    *,
    partners: list[np.ndarray] | None = None,
):
    """``count`` random patches (B, 1, size, size) of ``crops`` (the shared :func:`._torch.random_patches`), half of
    the batch mirrored; with ``partners`` (aligned with ``crops``), the same patches of them too."""
    stacked = crops if partners is None else [np.stack([c, p]) for c, p in zip(crops, partners)]
    patches = random_patches(stacked, size, count, rng)
    flip = torch.from_numpy(rng.random(count) < 0.5)
    patches[flip] = patches[flip].flip(-1)
    return patches if partners is None else (patches[:, :1], patches[:, 1:])


class LedModels(torch.nn.Module):
    """What LED keeps: the CycleGAN's degradation generator and the (EMA) conditional denoiser."""

    def __init__(self, params: dict):
        super().__init__()
        from xvertnet.methods.led.conditional_diffusion import diffusion_unet
        from xvertnet.methods.led.cyclegan import ResnetGenerator

        self.degrade = ResnetGenerator(width=params["gan_width"], blocks=params["gan_blocks"])
        self.denoiser = diffusion_unet(
            channels=params["channels"],
            attention=params["attention"],
            res_blocks=params["res_blocks"],
            norm_groups=params["norm_groups"],
        )


@register
class Led(Method):
    name = "led"
    trainable = True
    training_splits = ("train", "val")  # its validation crops choose the best diffusion step and the sampler's start
    defaults = {
        "patch": 64,
        "seed": 0,
        "device": "auto",
        "precision": "auto",
        "noise_threshold": None,
        # CycleGAN (seed: 9 blocks, width 64, lr 1e-4, beta1 0.5, lambda 10, identity 0.5, pool 50)
        "gan_steps": 300,
        "gan_batch": 4,
        "gan_width": 16,
        "gan_blocks": 3,
        "disc_width": 32,
        "gan_lr": 2e-4,
        "gan_beta1": 0.5,
        "cycle_weight": 10.0,
        "identity_weight": 0.5,
        "pool_size": 50,
        # conditional DDPM (seed: lr 1e-5, batch 32, T 1000, early stopping)
        "diffusion_steps": 1500,
        "diffusion_batch": 8,
        "diffusion_lr": 5e-4,
        "channels": [32, 64, 64],
        "attention": [False, False, False],
        "res_blocks": 1,
        "norm_groups": 16,
        "train_timesteps": 1000,
        "ema_decay": 0.995,
        "validate_every": 100,
        "patience": 4,
        # sampling
        "sample_steps": 20,
        "start_fraction": None,
    }

    def __init__(self, params=None):
        super().__init__(params)
        from xvertnet.errors import InvalidValueError

        channels, attention = self.params["channels"], self.params["attention"]
        if len(attention) != len(channels):
            raise InvalidValueError(
                f"led: 'attention' needs one entry per level of 'channels': {len(channels)} levels, got {len(attention)}"
            )
        if any(c % self.params["norm_groups"] for c in channels):
            raise InvalidValueError(
                f"led: every channel count must be a multiple of norm_groups ({self.params['norm_groups']}): channels {list(channels)}"
            )
        if self.params["patch"] < 32 or self.params["patch"] % 2 ** max(len(channels) - 1, 2):
            raise InvalidValueError(
                f"led: patch {self.params['patch']} must be at least 32 (the PatchGAN's four downsamplings) "
                f"and a multiple of {2 ** max(len(channels) - 1, 2)}"
            )
        torch.manual_seed(self.params["seed"])
        self.models = LedModels(self.params)
        self.start_fraction = self.params["start_fraction"]  # or chosen by fit, or read by load

    # -- training data -------------------------------------------------------------------------------------
    def training_data(self, shards, manifests: dict | None = None) -> dict:
        """The training and validation crops with their manifest rows, split into the quality sets."""
        from xvertnet.io.datasets import read_manifest, shards_by_dataset
        from xvertnet.io.shard_store import TRAIN_ROIS, iter_items

        manifests = manifests or {}
        rows = {
            (dataset, row["image_id"]): row
            for dataset, path in manifests.items()
            for row in read_manifest(path).to_dict("records")
        }  # by data set: ids may repeat across them
        by_dataset = shards_by_dataset(shards, manifests) if manifests else {"": list(shards)}
        records = {"train": [], "val": []}
        for dataset, shard in ((d, s) for d, paths in by_dataset.items() for s in paths):
            for image_id, arrays, attrs in iter_items(shard, names=None):
                if attrs.get("split") not in records:
                    continue
                info = rows.get((dataset, image_id), {})
                for roi in TRAIN_ROIS:
                    if f"{roi}/X" in arrays:
                        records[attrs["split"]].append(
                            {
                                "image_id": image_id,
                                "roi": roi,
                                "crop": arrays[f"{roi}/X"],
                                **{k: info.get(k, "") for k in ("patient", "view", "condition", "source")},
                            }
                        )
        high, low, rule = quality_sets(records["train"], noise_threshold=self.params["noise_threshold"])
        val_high, _, _ = (
            quality_sets(records["val"], noise_threshold=self.params["noise_threshold"])
            if records["val"]
            else ([], [], "")
        )
        return {"high": high, "low": low, "val_high": val_high, "rule": rule}

    # -- training --------------------------------------------------------------------------------------------
    def fit(self, data, out_dir: Path) -> dict:
        from xvertnet.model.device import grad_scaler, resolve_precision, select_device

        if not isinstance(data, dict):  # plain crops (tests, own code): the noise proxy splits them
            high, low, rule = quality_sets([{"crop": c} for c in data], noise_threshold=self.params["noise_threshold"])
            data = {"high": high, "low": low, "val_high": [], "rule": rule}
        high = [np.asarray(r["crop"], np.float32) for r in data["high"]]
        low = [np.asarray(r["crop"], np.float32) for r in data["low"]]
        if not high or not low:
            from xvertnet.errors import XvertnetError

            raise XvertnetError(
                f"led: needs high- and low-quality training crops, got {len(high)} high and {len(low)} low ({data['rule']})"
            )
        device = select_device(self.params["device"])
        dtype = resolve_precision(device, self.params["precision"])
        rng = np.random.default_rng(self.params["seed"])
        torch.manual_seed(self.params["seed"])
        start = time.perf_counter()
        gan = self._train_cyclegan(high, low, rng, device, dtype)
        gan_seconds = time.perf_counter() - start
        degraded = self._degrade_all(high, device)
        val_high = [np.asarray(r["crop"], np.float32) for r in data["val_high"]]
        val_degraded = self._degrade_all(val_high, device) if val_high else []
        diffusion = self._train_diffusion(
            high, degraded, val_high, val_degraded, rng, device, dtype, grad_scaler(device, dtype)
        )
        self.models.to("cpu").eval()
        diffusion["start_choice"] = self._choose_start(val_high or high, val_degraded or degraded)
        self.start_fraction = diffusion["start_choice"]["chosen"]
        ids = lambda records: sorted({r.get("image_id", "") for r in records})  # noqa: E731
        return save_model(
            self.models,
            out_dir,
            {
                "method": self.name,
                "params": self.params,
                "quality_rule": data["rule"],
                "high_images": ids(data["high"]),
                "low_images": ids(data["low"]),
                "high_crops": len(high),
                "low_crops": len(low),
                "validation_crops": len(val_high),
                "device": str(device),
                "autocast": str(dtype),
                "cyclegan": gan,
                "diffusion": diffusion,
                "first_loss": diffusion["history"][0]["train"],
                "last_loss": diffusion["history"][-1]["train"],
                "seconds_cyclegan": gan_seconds,
                "seconds": time.perf_counter() - start,
            },
        )

    def _train_cyclegan(self, high, low, rng, device, dtype) -> dict:
        from xvertnet.methods.led.conditional_diffusion import to_model_range
        from xvertnet.methods.led.cyclegan import CycleGan, ImagePool
        from xvertnet.model.device import autocast, grad_scaler

        p = self.params
        gan = CycleGan(generator_width=p["gan_width"], blocks=p["gan_blocks"], discriminator_width=p["disc_width"])
        gan.degrade = self.models.degrade  # train the generator LED keeps
        gan.to(device).train()
        generators = torch.optim.Adam(
            [*gan.degrade.parameters(), *gan.restore.parameters()], lr=p["gan_lr"], betas=(p["gan_beta1"], 0.999)
        )
        discriminators = torch.optim.Adam(
            [*gan.judge_low.parameters(), *gan.judge_high.parameters()], lr=p["gan_lr"], betas=(p["gan_beta1"], 0.999)
        )
        pools = ImagePool(p["pool_size"], seed=p["seed"]), ImagePool(p["pool_size"], seed=p["seed"] + 1)
        scalers = grad_scaler(device, dtype), grad_scaler(device, dtype)  # enabled for fp16 on CUDA only
        history = []
        for step in range(p["gan_steps"]):
            batch_high = to_model_range(patch_batch(high, p["gan_batch"], p["patch"], rng)).to(device)
            batch_low = to_model_range(patch_batch(low, p["gan_batch"], p["patch"], rng)).to(device)
            with autocast(device, dtype):
                terms, fake_low, fake_high = gan.generator_step(
                    batch_high, batch_low, cycle_weight=p["cycle_weight"], identity_weight=p["identity_weight"]
                )
            generators.zero_grad(set_to_none=True)
            scalers[0].scale(terms["total"].float()).backward()
            scalers[0].step(generators)
            scalers[0].update()
            with autocast(device, dtype):
                d_loss = gan.discriminator_loss(
                    batch_high, batch_low, pools[0].query(fake_low), pools[1].query(fake_high)
                )
            discriminators.zero_grad(set_to_none=True)
            scalers[1].scale(d_loss.float()).backward()
            scalers[1].step(discriminators)
            scalers[1].update()
            if step % 25 == 0 or step == p["gan_steps"] - 1:
                history.append(
                    {
                        "step": step,
                        **{k: float(v.detach()) for k, v in terms.items()},
                        "discriminators": float(d_loss.detach()),
                    }
                )
        gan.to("cpu")
        return {"history": history}

    @torch.no_grad()
    def _degrade_all(self, crops, device) -> list[np.ndarray]:
        """G applied to whole crops: the synthetic low-quality partners of the high-quality crops."""
        from xvertnet.methods.led.conditional_diffusion import to_image_range, to_model_range

        generator = self.models.degrade.to(device).eval()
        out = []
        for crop in crops:
            padded, (height, width) = pad_to_multiple(torch.from_numpy(crop)[None, None].to(device), 4)
            out.append(to_image_range(generator(to_model_range(padded)))[0, 0, :height, :width].cpu().numpy())
        return out

    def _train_diffusion(self, high, degraded, val_high, val_degraded, rng, device, dtype, scaler) -> dict:
        from monai.networks.schedulers import DDPMScheduler
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        from xvertnet.methods.led.conditional_diffusion import noise_prediction_loss
        from xvertnet.model.device import autocast

        p = self.params
        scheduler = DDPMScheduler(num_train_timesteps=p["train_timesteps"])
        network = self.models.denoiser.to(device).train()
        ema = AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(p["ema_decay"]))
        optimiser = torch.optim.Adam(network.parameters(), lr=p["diffusion_lr"])
        generator = torch.Generator(device=device).manual_seed(p["seed"])
        # Fixed validation batch (patches, timesteps, noise): the validation split's pairs, else training pairs.
        val_rng = np.random.default_rng(p["seed"] + 7)
        val_source = (val_high, val_degraded) if val_high else (high, degraded)
        val_clean, val_condition = patch_batch(val_source[0], 16, p["patch"], val_rng, partners=val_source[1])
        val_generator = torch.Generator(device="cpu").manual_seed(p["seed"] + 11)
        val_t = torch.randint(0, p["train_timesteps"], (16,), generator=val_generator)
        val_noise = torch.randn(val_clean.shape, generator=val_generator)
        pin = device.type == "cuda"
        history, best, best_state, waited = [], float("inf"), None, 0
        for step in range(p["diffusion_steps"]):
            clean, condition = patch_batch(high, p["diffusion_batch"], p["patch"], rng, partners=degraded)
            if pin:
                clean, condition = clean.pin_memory(), condition.pin_memory()
            clean, condition = clean.to(device, non_blocking=pin), condition.to(device, non_blocking=pin)
            with autocast(device, dtype):
                loss = noise_prediction_loss(network, scheduler, clean, condition, generator=generator)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            ema.update_parameters(network)
            if (step + 1) % p["validate_every"] == 0 or step == p["diffusion_steps"] - 1:
                ema.eval()
                with torch.no_grad(), autocast(device, dtype):
                    val = float(
                        noise_prediction_loss(
                            ema.module,
                            scheduler,
                            val_clean.to(device),
                            val_condition.to(device),
                            timesteps=val_t.to(device),
                            noise=val_noise.to(device),
                        )
                    )
                history.append({"step": step + 1, "train": float(loss.detach()), "validation": val})
                if val < best:
                    best, waited = val, 0
                    best_state = {k: v.detach().clone() for k, v in ema.module.state_dict().items()}
                else:
                    waited += 1
                    if waited >= p["patience"]:
                        break
        if best_state is None:
            from xvertnet.errors import XvertnetError

            raise XvertnetError(
                f"led: the diffusion model's validation loss was never finite ({history[-1]['validation']}): training diverged"
            )
        self.models.denoiser.load_state_dict(best_state)
        return {
            "history": history,
            "best_validation": best,
            "stopped_at": history[-1]["step"],
            "validation_source": "validation split" if val_high else "training pairs (no validation split)",
        }

    def _choose_start(self, clean: list[np.ndarray], degraded: list[np.ndarray]) -> dict:
        """``start_fraction`` as configured, or the candidate whose restorations of the validation pairs (the
        validation split's clean crops and their learned degradations) have the best mean PSNR."""
        from xvertnet.metrics import psnr, to_255

        if self.params["start_fraction"] is not None:
            return {"chosen": float(self.params["start_fraction"]), "rule": "configured"}
        scores = {}
        for fraction in START_CHOICES:
            self.start_fraction = fraction
            scores[fraction] = float(
                np.mean([psnr(to_255(self.enhance(d)), to_255(c)) for c, d in zip(clean, degraded)])
            )
        chosen = max(scores, key=scores.get)
        unrestored = float(np.mean([psnr(to_255(d), to_255(c)) for c, d in zip(clean, degraded)]))
        return {
            "chosen": chosen,
            "rule": "best validation PSNR",
            "psnr": {str(k): v for k, v in scores.items()},
            "degraded_psnr": unrestored,
        }

    # -- use -------------------------------------------------------------------------------------------------
    def load(self, model_dir: Path) -> None:
        import json

        load_weights(self.models, model_dir)
        recorded = (
            json.loads((Path(model_dir) / "model.json").read_text())
            .get("diffusion", {})
            .get("start_choice", {})
            .get("chosen")
        )
        if self.params["start_fraction"] is None and recorded is None:
            from xvertnet.errors import InputFileError

            raise InputFileError(
                Path(model_dir) / "model.json",
                "records no sampler start (diffusion.start_choice); retrain or set baselines.led.start_fraction",
            )
        self.start_fraction = float(
            self.params["start_fraction"] if self.params["start_fraction"] is not None else recorded
        )

    def degrade(self, image: np.ndarray) -> np.ndarray:
        """The learned degradation G applied to an image (LED's synthetic low-quality version)."""
        from xvertnet.model.device import select_device

        return self._degrade_all([np.asarray(image, np.float32)], select_device(self.params["device"]))[0]

    @torch.no_grad()
    def enhance(self, image: np.ndarray) -> np.ndarray:
        from xvertnet.methods.led.conditional_diffusion import sample
        from xvertnet.model.device import autocast, resolve_precision, select_device

        if self.start_fraction is None:
            from xvertnet.errors import XvertnetError

            raise XvertnetError(
                "led: train (fit) or load the model before enhancing: the sampler's start is chosen in training"
            )
        device = select_device(self.params["device"])
        network = self.models.denoiser.to(device).eval()
        levels = len(self.params["channels"])
        padded, (height, width) = pad_to_multiple(
            torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None].to(device), 2 ** (levels - 1)
        )
        output = sample(
            network,
            padded,
            train_timesteps=self.params["train_timesteps"],
            steps=self.params["sample_steps"],
            start_fraction=self.start_fraction,
            seed=self.params["seed"],
            autocast=autocast(device, resolve_precision(device, self.params["precision"])),
        )
        return output[0, 0, :height, :width].float().cpu().numpy().astype(np.float32)
