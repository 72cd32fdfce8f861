"""One place that picks the device and the precision; it may change speed, never meaning."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import torch

from .errors import UserError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    """cuda -> mps -> cpu for "auto"; an explicit name must be present."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise UserError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but this machine has no CUDA GPU: use --device cpu or auto")
    if name == "mps" and not has_mps:
        raise UserError("device 'mps' asked for, but this machine has no Apple GPU: use --device cpu or auto")
    return torch.device(name)


def hardware(device: torch.device) -> str:
    """A short description of what ran: the GPU's name, or the CPU model and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (mps)"
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores"


def cpu_has_bf16() -> bool:
    """True when oneDNN has native bf16 kernels here (avx512_bf16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for a precision setting: "auto", "bf16" or "fp32"."""
    if precision not in ("auto", "bf16", "fp32"):
        raise UserError(f"unknown precision {precision!r}: choose auto, bf16 or fp32")
    if precision == "fp32" or device.type == "mps":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``; nothing when ``dtype`` is None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on the CPU, where oneDNN's kernels for it are faster (the seed Net's 8->24
    conv at 28x28 trains 3x faster than in NCHW); the default layout elsewhere."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format
