"""Device choices change speed only: the memory layout, and the precision `auto` picks."""

import pytest
import torch

from mnist_lib.config import TrainConfig, UserError
from mnist_lib.device import (
    CPU_FP32_ENV,
    autocast_dtype,
    cpu_has_bf16,
    memory_format,
    pick_device,
)
from mnist_lib.fit import Run
from mnist_lib.model import Net

CPU = torch.device("cpu")
CUDA = torch.device("cuda")


def test_cpu_models_are_channels_last_and_compute_the_same():
    model = Run.new(TrainConfig(), CPU, None).model
    assert memory_format(CPU) == torch.channels_last
    assert model.conv_block1[1][0].weight.is_contiguous(memory_format=torch.channels_last)
    reference = Net(dropout=0.0)
    reference.load_state_dict(model.state_dict())
    x = torch.randn(8, 1, 28, 28)
    torch.testing.assert_close(model.eval()(x), reference.eval()(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("capability", "expected"),
    [
        ((7, 5), None),  # T4 (Colab's free GPU): bf16 only emulated, so fp32
        ((7, 0), None),  # V100
        ((8, 0), torch.bfloat16),  # A100
        ((9, 0), torch.bfloat16),  # H100
    ],
)
def test_auto_uses_bf16_only_on_gpus_that_have_it_natively(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation
    assert autocast_dtype(CUDA, "auto") == expected
    assert autocast_dtype(CUDA, "fp32") is None and autocast_dtype(CUDA, "bf16") == torch.bfloat16


def test_auto_on_the_cpu_follows_native_bf16_and_the_fp32_switch(monkeypatch):
    monkeypatch.setenv(CPU_FP32_ENV, "1")
    assert not cpu_has_bf16() and autocast_dtype(CPU, "auto") is None
    monkeypatch.setenv(CPU_FP32_ENV, "0")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert autocast_dtype(CPU, "auto") == torch.bfloat16
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert autocast_dtype(CPU, "auto") is None
    assert autocast_dtype(CPU, "bf16") == torch.bfloat16  # asked for by name: emulated if need be


@pytest.mark.parametrize("name", ["cuda:x", "cuda:2", "cuda:-1"])
def test_a_gpu_that_is_not_there_is_refused_in_one_line(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # cuda:0 and cuda:1
    problem = rf"no GPU '{name}' here: .* cuda:0 to cuda:1" if name == "cuda:2" else "unknown"
    with pytest.raises(UserError, match=problem):
        pick_device(name)
    assert pick_device("cuda:1") == torch.device("cuda:1")
