"""One place that picks the device and the precision; it may change speed, never meaning."""

import contextlib
import os
import platform
from pathlib import Path

import torch

from .config import UserError

DEVICES = ("auto", "cpu", "cuda", "mps")
# Set to 1 to train in fp32 on a CPU that has native bf16: what an AVX2-only CPU does.
CPU_FP32_ENV = "MNIST_CPU_FP32"


def pick_device(name: str = "auto") -> torch.device:
    """cuda -> mps -> cpu for "auto"; an explicit name must be present."""
    if name == "cpu":
        return torch.device(name)
    present = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if name == "auto":
        return torch.device("cuda" if present["cuda"] else "mps" if present["mps"] else "cpu")
    kind, _, index = name.partition(":")
    if name not in DEVICES and not (kind == "cuda" and index.isdigit()):
        raise UserError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}, or cuda:N")
    if not present.get(kind, True):
        raise UserError(
            f"device {name!r} asked for, but this machine has no {kind.upper()} GPU: "
            "use --device cpu or auto"
        )
    if index and int(index) >= torch.cuda.device_count():
        raise UserError(
            f"no GPU {name!r} here: this machine has cuda:0 to "
            f"cuda:{torch.cuda.device_count() - 1}; use one of them, or --device cuda"
        )
    return torch.device(name)


def hardware(device: torch.device) -> str:
    """A short description of what ran: the GPU's name, or the CPU model and core count."""
    if device.type != "cpu":
        return torch.cuda.get_device_name(device) if device.type == "cuda" else "Apple GPU (mps)"
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0] if names else platform.processor()}, {os.cpu_count()} cores"


def cpu_has_bf16() -> bool:
    """True when oneDNN has native bf16 kernels here (avx512_bf16 or AMX), unless
    $MNIST_CPU_FP32=1."""
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    return os.environ.get(CPU_FP32_ENV, "") in ("", "0") and bool(supported())


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for a precision setting ("auto", "bf16" or "fp32"); None means fp32.

    "auto" picks bf16 only where it is native: CPUs with AVX-512 BF16 or AMX, GPUs of compute
    capability 8.0 (Ampere) and later; not `torch.cuda.is_bf16_supported()`, which also counts
    emulation (a T4). Everywhere else it trains in fp32, which needs no loss scaling.
    """
    if precision == "fp32" or device.type == "mps":
        return None
    if device.type == "cuda":
        native = torch.cuda.get_device_capability(device) >= (8, 0)
    else:
        native = cpu_has_bf16()
    return torch.bfloat16 if precision == "bf16" or native else None


def precision_name(dtype: torch.dtype | None) -> str:
    return str(dtype or torch.float32).removeprefix("torch.")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``; nothing when ``dtype`` is None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on the CPU, where oneDNN's convolution kernels expect it; the default
    layout elsewhere."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format
