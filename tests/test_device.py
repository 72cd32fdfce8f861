"""Device choices that change speed only: memory layout and autocast."""

import torch

from mnist_lib import Net, TrainConfig
from mnist_lib.device import autocast, memory_format
from mnist_lib.train import make_model

CPU = torch.device("cpu")


def test_cpu_models_are_channels_last_and_compute_the_same():
    model = make_model(TrainConfig(), CPU)
    assert memory_format(CPU) == torch.channels_last
    assert model.conv_block1[1][0].weight.is_contiguous(memory_format=torch.channels_last)
    reference = Net(dropout=0.0)
    reference.load_state_dict(model.state_dict())
    x = torch.randn(8, 1, 28, 28)
    torch.testing.assert_close(model.eval()(x), reference.eval()(x), rtol=1e-4, atol=1e-5)


def test_autocast_none_is_fp32():
    with autocast(CPU, None):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
    with autocast(CPU, torch.bfloat16):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16

