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
        raise UserError(
            f"device {name!r} asked for, but this machine has no CUDA GPU: use --device cpu or auto"
        )
    if name.startswith("cuda:"):
        index, count = name.removeprefix("cuda:"), torch.cuda.device_count()
        if not (index.isdigit() and int(index) < count):
            raise UserError(
                f"no GPU {name!r} here: this machine has cuda:0 to cuda:{count - 1}; "
                "use one of them, or --device cuda"
            )
    if name == "mps" and not has_mps:
        raise UserError(
            "device 'mps' asked for, but this machine has no Apple GPU: use --device cpu or auto"
        )
    return torch.device(name)


def cpu_kind() -> str:
    """What kind of x86 CPU this is for training: native bf16 (AVX-512 BF16 or AMX) or not, and
    whether oneDNN and ATen were limited to AVX2 (to measure what an AVX2-only CPU does)."""
    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        flags = next(
            (line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), ""
        )
    kind = (
        "AVX-512 with native bf16"
        if "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()
        else "AVX-512"
        if "avx512f" in flags.split()
        else "AVX2"
        if "avx2" in flags.split()
        else platform.machine()
    )
    limits = [
        f"{name}={os.environ[name]}"
        for name in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
        if os.environ.get(name, "").upper().startswith("AVX2")
    ]
    if limits:
        kind += f", limited to AVX2 ({', '.join(limits)})"
    return kind


def hardware(device: torch.device) -> str:
    """A short description of what ran: the GPU's name, or the CPU model and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (mps)"
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = cpuinfo.read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores"


# Set to 1 to train in fp32 on a CPU that has native bf16: what an AVX2-only CPU does.
CPU_FP32_ENV = "MNIST_CPU_FP32"


def cpu_has_bf16() -> bool:
    """True when oneDNN has native bf16 kernels here (avx512_bf16 or AMX), unless
    $MNIST_CPU_FP32=1."""
    if os.environ.get(CPU_FP32_ENV, "") not in ("", "0"):
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cuda_has_bf16(device: torch.device) -> bool:
    """True on GPUs with native bf16 (compute capability 8.0, Ampere, and later).

    Not `torch.cuda.is_bf16_supported()`: that also counts emulation, e.g. on a T4 (7.5), which
    has no bf16 hardware.
    """
    return torch.cuda.get_device_capability(device) >= (8, 0)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for a precision setting ("auto", "bf16" or "fp32"); None means fp32.

    "auto" picks bf16 only where it is native; everywhere else, a T4 or an AVX2-only CPU included,
    it trains in fp32, which needs no loss scaling and keeps the recipe's numerics.
    """
    if precision == "fp32" or device.type == "mps":
        return None
    if precision == "bf16":
        return torch.bfloat16
    native = cuda_has_bf16(device) if device.type == "cuda" else cpu_has_bf16()
    return torch.bfloat16 if native else None


def precision_name(dtype: torch.dtype | None) -> str:
    return str(dtype or torch.float32).removeprefix("torch.")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``; nothing when ``dtype`` is None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on the CPU, where oneDNN's kernels for it are faster (README, Speed); the
    default layout elsewhere."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format
