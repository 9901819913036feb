"""Unsupervised training of one XVertNet iteration (journal paper, Secs. 3.4-3.5).

Schedule: L1 (gradient correlation) alone for ``phase1_epochs``, then ``gc_weight * L1 +
feature_weight * L2`` for ``phase2_epochs``; Adam (lr 1e-3, betas (0.9, 0.99)); early
stopping on the validation loss with ``patience`` epochs in each phase (phase 1 ending
early moves on to phase 2). The best model of the last phase is kept.

Data: the training crops (``train_upper``, ``train_lower``) of every image of the
``train`` split, validation on the ``val`` split; splits are per image (set in the
manifest), so no image has crops in two splits. Crops stream from the shard HDF5 files:
each data-loader worker opens its own handles after the fork (handles never cross a fork).

Every epoch writes an atomic checkpoint (model, optimiser, scaler, RNG states, epoch,
best validation loss, the log); a job killed at any moment and restarted resumes from the
last completed epoch, provided the configuration and data are the same (fingerprint).
Checkpoints and models are plain tensors and containers: they load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import ClassVar

import torch
from torch.utils.data import DataLoader

from xvertnet.errors import ConfigError, InvalidValueError, XvertnetError
from xvertnet.io.atomic import atomic_path
from xvertnet.model.device import autocast, grad_scaler, prepare_model, resolve_precision, select_device, to_device
from xvertnet.model.losses import (
    XVertNetLoss,
    blind_spot_input,
    blind_spot_loss,
    blind_spot_mask,
    displayed_cnr_loss,
    noise_probe,
)
from xvertnet.model.network import ModelConfig, XVertNet
from xvertnet.model.training_data import CropDataset, CropRef, any_bone, data_parameters, find_crops
from xvertnet.model.training_log import TERMS, loss_curve_figure, validation_spikes, write_log
from xvertnet.provenance import sha256_file
from xvertnet.settings import FromConfig

log = logging.getLogger(__name__)

#: Network inputs that a data shard provides per crop: the iteration's input and the original crop.
INPUT_NAMES = ("Xp", "X")


class TrainingError(XvertnetError):
    """Training cannot start or go on; the message says why."""


@dataclasses.dataclass(frozen=True)
class TrainConfig(FromConfig):
    """Training settings (config section ``train``). Paper scale: 200 + 200 (large data) or 25 epochs, batch 8.

    The config section is flat; the architecture keys (:data:`ARCHITECTURE_KEYS`) form ``model``.
    ``iterations`` (how many are chained) and ``internal`` (a variant's way of training) are
    planning keys (:mod:`xvertnet.plan`), not settings of one training run.
    """

    SECTION: ClassVar[str] = "train"
    ELSEWHERE: ClassVar[tuple[str, ...]] = ("iterations", "internal")
    ARCHITECTURE_KEYS: ClassVar[tuple[str, ...]] = ("base_width", "depth", "gl_weight", "output_head", "upsample")

    phase1_epochs: int = 200
    phase2_epochs: int = 25
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    batch_size: int = 8
    patience: int = 20
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    precision: str = "auto"
    gc_weight: float = 1.0
    feature_weight: float = 1.0
    entropy_bins: int = 256
    detach_feature_target: bool = False
    inputs: tuple[str, ...] = ("Xp",)
    blind_spot_weight: float = 0.0
    blind_spot_spacing: int = 4
    band_pass_weight: float = 0.0
    band_pass_sigmas: tuple[float, float] = (4.0, 12.0)
    band_pass_gain: float = 2.0
    bone_weight: float = 0.0
    displayed_cnr_weight: float = 0.0
    displayed_cnr_gain: float = 2.0
    displayed_cnr_probe: float = 0.05
    refresh_batchnorm: bool = False
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)

    def __post_init__(self):
        unknown = [name for name in self.inputs if name not in INPUT_NAMES]
        if not self.inputs or unknown:
            raise InvalidValueError(f"inputs must be a non-empty subset of {INPUT_NAMES}, got {list(self.inputs)}")
        if self.model.in_channels != len(self.inputs):
            raise InvalidValueError(
                f"model.in_channels ({self.model.in_channels}) must equal the number of inputs ({len(self.inputs)})"
            )
        if self.phase1_epochs < 0 or self.phase2_epochs < 0 or self.phase1_epochs + self.phase2_epochs < 1:
            raise InvalidValueError(f"need at least one epoch, got {self.phase1_epochs} + {self.phase2_epochs}")
        if self.batch_size < 1 or self.patience < 1:
            raise InvalidValueError(f"batch_size and patience must be >= 1, got {self.batch_size}, {self.patience}")
        weights = (self.blind_spot_weight, self.band_pass_weight, self.bone_weight, self.displayed_cnr_weight)
        if min(weights) < 0:
            raise InvalidValueError(f"loss weights must be >= 0, got {', '.join(map(str, weights))}")
        if self.displayed_cnr_gain <= 0 or self.displayed_cnr_probe <= 0:
            raise InvalidValueError(
                f"displayed_cnr_gain and displayed_cnr_probe must be > 0, got {self.displayed_cnr_gain}, "
                f"{self.displayed_cnr_probe}"
            )
        if self.blind_spot_spacing < 2:
            raise InvalidValueError(f"blind_spot_spacing must be >= 2, got {self.blind_spot_spacing}")
        if (
            len(self.band_pass_sigmas) != 2
            or not 0 < self.band_pass_sigmas[0] < self.band_pass_sigmas[1]
            or self.band_pass_gain <= 0
        ):
            raise InvalidValueError(
                f"need band_pass_sigmas [s1, s2] with 0 < s1 < s2 and band_pass_gain > 0, got "
                f"{list(self.band_pass_sigmas)}, {self.band_pass_gain}"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def config_keys(cls) -> dict[str, str]:
        keys = {field.name: field.name for field in dataclasses.fields(cls) if field.name != "model"}
        return {**keys, **{key: f"model.{key}" for key in cls.ARCHITECTURE_KEYS}}

    @classmethod
    def from_config(cls, section: dict | None) -> TrainConfig:
        """From the flat config section ``train`` (a variant's overrides merged in)."""
        values = {key: value for key, value in dict(section or {}).items() if key not in cls.ELSEWHERE}
        unknown = sorted(set(values) - set(cls.config_keys()))
        if unknown:
            raise ConfigError(f"train.{unknown[0]}", "unknown key for TrainConfig")
        model = {key: values.pop(key) for key in cls.ARCHITECTURE_KEYS if key in values}
        model["in_channels"] = len(values.get("inputs", ("Xp",)))
        try:
            return cls.from_dict({**values, "model": model})
        except (TypeError, ValueError) as error:
            raise ConfigError("train", str(error)) from None

    def record(self) -> dict:
        """The flat config keys (``from_config(record())`` gives the same settings)."""
        values = self.to_dict()
        model = values.pop("model")
        return {**values, **{key: model[key] for key in self.ARCHITECTURE_KEYS}}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        values = dict(values)
        model = ModelConfig(**values.pop("model", {}))
        values["betas"] = tuple(values.get("betas", (0.9, 0.99)))
        values["inputs"] = tuple(values.get("inputs", ("Xp",)))
        values["band_pass_sigmas"] = tuple(float(v) for v in values.get("band_pass_sigmas", (4.0, 12.0)))
        return cls(model=model, **values)


def _save_torch(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def fingerprint(config: TrainConfig, crops: list[CropRef], shards) -> str:
    """What a checkpoint must match to be resumed: configuration, crop list and shard contents."""
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    for crop in crops:
        digest.update(f"{crop.shard}|{crop.image_id}|{crop.roi}".encode())
    for shard in shards:
        digest.update(sha256_file(shard).encode())
    return digest.hexdigest()


def curve_title(out_dir: Path, config: TrainConfig, iteration: int) -> str:
    """The loss curve's title: the model set (from ``<set>/iter<t>[/training]``), the iteration and the settings
    that tell configurations apart."""
    parts = Path(out_dir).resolve().parts
    folder = next((parts[i - 1] for i in range(len(parts) - 1, 0, -1) if parts[i].startswith("iter")), "")
    extras = [
        f"{key} {getattr(config, key)}"
        for key in ("blind_spot_weight", "band_pass_weight", "bone_weight", "displayed_cnr_weight")
        if getattr(config, key)
    ]
    if config.refresh_batchnorm:
        extras.append("BatchNorm refreshed")
    settings = (
        f"{config.model.output_head} head, inputs {'+'.join(config.inputs)}, base {config.model.base_width}, "
        f"depth {config.model.depth}, L2 weight {config.feature_weight:g}" + "".join(f", {e}" for e in extras)
    )
    return f"{folder + ': ' if folder else ''}XVertNet iteration {iteration}\n{settings}"


def refresh_batchnorm(model, loader, *, device, dtype) -> None:
    """Re-estimate every BatchNorm layer's running statistics on ``loader`` with the current weights
    (a cumulative average over one pass, as ``torch.optim.swa_utils.update_bn`` does; the model takes
    two inputs, so the pass is written here). Validation and the saved model then use statistics of
    the weights they were computed with, not a moving average that lags behind them."""
    norms = [module for module in model.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = {module: module.momentum for module in norms}
    for module in norms:
        module.reset_running_stats()
        module.momentum = None
    was_training = model.training
    model.train()
    with torch.no_grad():
        for inputs, hfc, *_ in loader:
            with autocast(device, dtype):
                model(to_device(inputs, device), to_device(hfc, device))
    for module, momentum in momenta.items():
        module.momentum = momentum
    model.train(was_training)


@dataclasses.dataclass(frozen=True)
class EpochSettings:
    """What one pass over a loader needs besides the model, the data and the loss.

    ``blind_spot``: (weight, spacing) of Eq. S1 (:func:`xvertnet.model.losses.blind_spot_loss`); its
    masks come from the global RNG when training (resumable with it) and from ``seed`` when validating.
    ``displayed_cnr``: (weight, gain, probe, sigmas) of Eq. S4 (:func:`xvertnet.model.losses.displayed_cnr_loss`);
    its noise probes come from the same random numbers as the masks.
    ``progress``: the progress bar's label ("" for none)."""

    phase: int
    device: torch.device
    dtype: torch.dtype | None
    blind_spot: tuple[float, int] = (0.0, 4)
    displayed_cnr: tuple[float, float, float, tuple[float, float]] = (0.0, 2.0, 0.05, (4.0, 12.0))
    seed: int = 0
    progress: str = ""


def _run_epoch(model, loader, loss_fn, settings: EpochSettings, step=None) -> dict:
    """One pass over ``loader``; trains when ``step`` (the optimiser and its gradient scaler) is given.
    Returns mean losses."""
    from tqdm import tqdm

    training = step is not None
    optimiser, scaler = step if training else (None, None)
    phase, device, dtype, seed = settings.phase, settings.device, settings.dtype, settings.seed
    progress = settings.progress
    model.train(training)
    sums = dict.fromkeys(TERMS, 0.0)
    seen = set()
    count = 0
    blind_weight, spacing = settings.blind_spot
    generator = None if training else torch.Generator().manual_seed(seed)
    with torch.set_grad_enabled(training):
        for inputs, hfc, *bone in tqdm(loader, desc=progress, leave=False, disable=not progress, mininterval=1.0):
            inputs, hfc = to_device(inputs, device), to_device(hfc, device)
            with autocast(device, dtype):
                output, features = model(inputs, hfc)
            terms = loss_fn(
                output,
                hfc,
                features,
                with_feature_loss=phase == 2,
                reference=inputs[:, :1],
                bone=to_device(bone[0], device) if bone else None,
            )
            if blind_weight > 0:
                mask = blind_spot_mask(inputs.shape, spacing, generator).to(device)
                with autocast(device, dtype):
                    masked_output, _ = model(blind_spot_input(inputs, mask), blind_spot_input(hfc, mask))
                terms["blind_spot"] = blind_spot_loss(output, masked_output, mask)
                terms["total"] = terms["total"] + blind_weight * terms["blind_spot"]
            cnr_weight, cnr_gain, probe, sigmas = settings.displayed_cnr
            if cnr_weight > 0:  # Eq. S4: the same network on its input with a noise probe added
                noise = noise_probe(inputs, probe, generator)
                noisy_inputs = torch.cat([inputs[:, :1] + noise.to(inputs.dtype), inputs[:, 1:]], dim=1)
                with autocast(device, dtype):
                    noisy_output, _ = model(noisy_inputs, hfc)
                reference = inputs[:, :1]
                terms["displayed_cnr"] = displayed_cnr_loss(
                    output, noisy_output, reference, reference + noise.to(reference.dtype), sigmas=sigmas, gain=cnr_gain
                )
                terms["total"] = terms["total"] + cnr_weight * terms["displayed_cnr"]
            if training:
                optimiser.zero_grad(set_to_none=True)
                scaler.scale(terms["total"]).backward()
                scaler.step(optimiser)
                scaler.update()
            batch = inputs.shape[0]
            count += batch
            for key in sums:
                if key in terms:
                    sums[key] += float(terms[key].detach()) * batch
                    seen.add(key)
    if count == 0:
        return {key: float("nan") for key in sums}
    return {key: value / count if key in seen else float("nan") for key, value in sums.items()}


def train_iteration(
    shards,
    out_dir,
    config: TrainConfig,
    *,
    iteration: int = 1,
    progress: bool = True,
    splits: tuple[str, str | None] = ("train", "val"),
) -> dict:
    """Train one iteration on the data shards; write the model and its records into ``out_dir``.

    ``splits``: the split whose crops are trained on and the one validated on (``None``: early
    stopping on the training loss, as internal learning on one image does).

    Writes ``model.pt`` (state dict of the best epoch of the last phase), ``model.json``
    (architecture, training and preprocessing parameters, data fingerprint, sha256 of
    model.pt), ``train_log.csv``, ``loss_curve.png`` and, during training, ``checkpoint.pt``.
    Returns the summary stored in ``model.json``.
    """
    shards = [str(shard) for shard in shards]
    if not shards:
        raise TrainingError("no data shards given")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_split, val_split = splits
    train_crops = find_crops(shards, train_split)
    val_crops = find_crops(shards, val_split) if val_split else []
    if not train_crops:
        raise TrainingError(f"no training crops (split '{train_split}') in {len(shards)} shard(s)")
    if not val_crops and val_split:
        log.warning("no validation crops (split '%s'): early stopping uses the training loss", val_split)
    device = select_device(config.device)
    dtype = resolve_precision(device, config.precision)
    torch.manual_seed(config.seed)
    model = prepare_model(XVertNet(config.model), device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
    scaler = grad_scaler(device, dtype)
    loss_fn = XVertNetLoss(
        gc_weight=config.gc_weight,
        feature_weight=config.feature_weight,
        bins=config.entropy_bins,
        detach_target=config.detach_feature_target,
        band_pass_weight=config.band_pass_weight,
        band_pass_sigmas=config.band_pass_sigmas,
        band_pass_gain=config.band_pass_gain,
        bone_weight=config.bone_weight,
    )
    generator = torch.Generator().manual_seed(config.seed)
    loader_options = {
        "batch_size": config.batch_size,
        "num_workers": config.num_workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": config.num_workers > 0,
    }
    with_bone = config.bone_weight > 0
    train_loader = DataLoader(
        CropDataset(train_crops, config.inputs, with_bone=with_bone),
        shuffle=True,
        generator=generator,
        **loader_options,
    )
    val_loader = (
        DataLoader(CropDataset(val_crops, config.inputs, with_bone=with_bone), shuffle=False, **loader_options)
        if val_crops
        else None
    )
    if with_bone and not any_bone(train_crops):
        raise TrainingError(
            "train.bone_weight > 0 but no training crop has a bone target (set demo.bone_emphasis, or "
            "give the manifest a bone_path column)"
        )
    # The BatchNorm refresh reads the training crops in a fixed order (the shuffled loader's generator is left alone).
    refresh_loader = (
        DataLoader(CropDataset(train_crops, config.inputs), shuffle=False, **loader_options)
        if config.refresh_batchnorm
        else None
    )

    key = fingerprint(config, train_crops + val_crops, shards)
    checkpoint_path = out_dir / "checkpoint.pt"
    state = {
        "epoch": 0,
        "phase1_end": config.phase1_epochs,
        "best_val": math.inf,
        "best_epoch": 0,
        "stale": 0,
        "log": [],
        "seconds": 0.0,
    }
    # The best weights of the last phase so far: kept in the checkpoint, since Snakemake deletes model.pt
    # (an output) before it reruns an interrupted job, and a resumed run must still end with the best epoch.
    best_weights = None
    if checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=True)
        if (
            checkpoint.get("fingerprint") == key and "best_model" in checkpoint
        ):  # (older checkpoints lack the best weights)
            model.load_state_dict(checkpoint["model"])
            optimiser.load_state_dict(checkpoint["optimiser"])
            scaler.load_state_dict(checkpoint["scaler"])
            generator.set_state(checkpoint["generator"])
            torch.set_rng_state(checkpoint["torch_rng"])
            state = checkpoint["state"]
            best_weights = checkpoint.get("best_model")
            log.info("resumed iteration %d from %s after epoch %d", iteration, checkpoint_path, state["epoch"])
        else:
            log.warning("%s was written for other settings or data: starting afresh", checkpoint_path)
    last_phase = 2 if config.phase2_epochs > 0 else 1
    log.info(
        "iteration %d: %d training and %d validation crops, device %s, autocast %s, %d parameters",
        iteration,
        len(train_crops),
        len(val_crops),
        device,
        dtype,
        sum(p.numel() for p in model.parameters()),
    )

    while state["epoch"] < state["phase1_end"] + config.phase2_epochs:
        epoch = state["epoch"] + 1
        phase = 1 if epoch <= state["phase1_end"] else 2
        start = time.perf_counter()
        blind_spot = (config.blind_spot_weight, config.blind_spot_spacing)
        label = f"iter {iteration} epoch {epoch} (phase {phase})" if progress else ""
        displayed_cnr = (
            config.displayed_cnr_weight,
            config.displayed_cnr_gain,
            config.displayed_cnr_probe,
            config.band_pass_sigmas,
        )
        settings = EpochSettings(
            phase, device, dtype, blind_spot=blind_spot, displayed_cnr=displayed_cnr, progress=label
        )
        train_terms = _run_epoch(model, train_loader, loss_fn, settings, step=(optimiser, scaler))
        if refresh_loader is not None:
            refresh_batchnorm(model, refresh_loader, device=device, dtype=dtype)
        val_terms = (
            _run_epoch(model, val_loader, loss_fn, dataclasses.replace(settings, seed=config.seed, progress=""))
            if val_loader
            else train_terms
        )
        seconds = time.perf_counter() - start
        row = {"epoch": epoch, "phase": phase, "seconds": seconds}
        for term, column in zip(("total", *TERMS[1:]), ("loss", *TERMS[1:])):
            row[f"train_{column}"] = train_terms[term]
            row[f"val_{column}"] = val_terms[term] if val_loader else float("nan")
        state["log"].append(row)
        state["seconds"] += seconds
        monitored = val_terms["total"]
        if epoch == state["phase1_end"] + 1 and phase == 2:  # a new phase, a new loss: a new best
            state["best_val"], state["stale"] = math.inf, 0
        if monitored < state["best_val"]:
            state["best_val"], state["best_epoch"], state["stale"] = monitored, epoch, 0
            if phase == last_phase:
                best_weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
                _save_torch(best_weights, out_dir / "model.pt")
        else:
            state["stale"] += 1
        if state["stale"] >= config.patience:
            if phase == 1 and config.phase2_epochs > 0:
                log.info("phase 1 stopped early at epoch %d (no validation gain in %d epochs)", epoch, config.patience)
                state["phase1_end"] = epoch
            else:
                log.info("stopped early at epoch %d (no validation gain in %d epochs)", epoch, config.patience)
                state["stopped_early"] = True
        state["epoch"] = epoch
        log.info(
            "iter %d epoch %d phase %d: train %.5f (L1 %.5f) val %.5f  %.1f s",
            iteration,
            epoch,
            phase,
            train_terms["total"],
            train_terms["l1"],
            monitored,
            seconds,
        )
        _save_torch(
            {
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "scaler": scaler.state_dict(),
                "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "state": state,
                "fingerprint": key,
                "best_model": best_weights,
            },
            checkpoint_path,
        )
        write_log(state["log"], out_dir / "train_log.csv")
        if state.get("stopped_early"):
            break

    # The best epoch's weights (also after resuming a finished or interrupted run whose model.pt was
    # deleted); the last weights if no epoch of the last phase improved on infinity.
    _save_torch(best_weights if best_weights is not None else model.state_dict(), out_dir / "model.pt")
    write_log(state["log"], out_dir / "train_log.csv")
    loss_curve_figure(state["log"], out_dir / "loss_curve.png", title=curve_title(out_dir, config, iteration))
    summary = {
        "iteration": iteration,
        "model": dataclasses.asdict(config.model),
        "train": config.to_dict(),
        "data": data_parameters(shards),
        "data_fingerprint": key,
        "train_crops": len(train_crops),
        "val_crops": len(val_crops),
        "epochs": state["epoch"],
        "phase1_epochs_run": min(state["phase1_end"], state["epoch"]),
        "best_epoch": state["best_epoch"],
        "best_val_loss": state["best_val"],
        "validation_spikes": validation_spikes(state["log"]),
        "training_seconds": state["seconds"],
        "device": str(device),
        "autocast": str(dtype),
        "model_sha256": sha256_file(out_dir / "model.pt"),
    }
    from xvertnet import __version__

    summary["xvertnet"] = __version__
    with atomic_path(out_dir / "model.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=float))
    return summary
