"""Device and precision: CUDA when present (AMP, pinned memory), else the CPU (bf16 autocast where it works).

These machines have no GPU; the CUDA paths are the ones a GPU node takes, and every
function falls back to the CPU cleanly.
"""

from __future__ import annotations

import contextlib
import functools
import logging

import torch

from xvertnet.errors import InvalidValueError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def select_device(preference: str = "auto") -> torch.device:
    """``"auto"``: CUDA if available, else CPU; ``"cuda"``/``"cuda:N"`` falls back to the CPU with a warning."""
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "auto" or preference.startswith("cuda"):
        if torch.cuda.is_available():
            return torch.device("cuda" if preference == "auto" else preference)
        if preference != "auto":
            log.warning("device '%s' requested but CUDA is not available: using the CPU", preference)
        return torch.device("cpu")
    raise InvalidValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got '{preference}'")


@functools.cache
def cpu_bf16_works() -> bool:
    """Whether bf16 autocast runs a convolution on this CPU (it does on any x86-64 with AVX2)."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.functional.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3))
        return True
    except (RuntimeError, TypeError):  # pragma: no cover - depends on the CPU build
        return False


def resolve_precision(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Autocast dtype for ``device``: None means fp32. ``auto``: fp16 on CUDA (bf16 where supported), bf16 on CPU."""
    if precision not in PRECISIONS:
        raise InvalidValueError(f"precision must be one of {PRECISIONS}, got '{precision}'")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if precision == "fp16":
        log.warning("fp16 autocast is for CUDA; using bf16 on the CPU")
    return torch.bfloat16 if cpu_bf16_works() else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast context for ``dtype`` (no-op for fp32). Losses are computed in fp32 by the loss functions."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 on CUDA (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and dtype == torch.float16)


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to the device in channels_last memory format (faster convolutions on CPU and GPU)."""
    return model.to(device=device, memory_format=torch.channels_last)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, C, H, W) batch to the device, channels_last, non-blocking from pinned memory on CUDA."""
    return tensor.to(device, non_blocking=device.type == "cuda").contiguous(memory_format=torch.channels_last)
