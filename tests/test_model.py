"""The networks: parameter budget counted by hand and by torchsummary, the original layer shapes."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchsummary import summary

from mnist_lib.model import MODELS, Net, TinyNet, build_model, count_params
from mnist_lib.record import MAX_PARAMS

# Net's layers by hand: 3x3 (or 1x1) convs have k*k*c_in*c_out weights and no bias,
# each BatchNorm has 2*c (weight, bias), the Linear has 32*10 weights + 10 biases.
NET_PARAMS_BY_HAND = (
    3 * 3 * 1 * 8
    + 2 * 8  # conv_block1: 1 -> 8, 3x3, pad 1
    + 3 * 3 * 8 * 24
    + 2 * 24  # conv_block1: 8 -> 24, 3x3, pad 1
    + 1 * 1 * 24 * 8
    + 2 * 8  # transition1: 24 -> 8, 1x1
    + 3 * 3 * 8 * 16
    + 2 * 16  # conv_block2: 8 -> 16
    + 3 * 3 * 16 * 24
    + 2 * 24  # conv_block2: 16 -> 24
    + 1 * 1 * 24 * 8
    + 2 * 8  # transition2: 24 -> 8, 1x1
    + 3 * 3 * 8 * 16
    + 2 * 16  # conv_block3: 8 -> 16
    + 3 * 3 * 16 * 32
    + 2 * 32  # conv_block3: 16 -> 32
    + 32 * 10
    + 10  # dense
)

# The original document's layers in order: (c_out, c_in, k, k) and padding; then BatchNorm's c.
ORIGINAL_CONVS = [
    ((8, 1, 3, 3), 1),
    ((24, 8, 3, 3), 1),
    ((8, 24, 1, 1), 0),
    ((16, 8, 3, 3), 0),
    ((24, 16, 3, 3), 0),
    ((8, 24, 1, 1), 0),
    ((16, 8, 3, 3), 0),
    ((32, 16, 3, 3), 0),
]
ORIGINAL_BATCHNORMS = [8, 24, 8, 16, 24, 8, 16, 32]


class OriginalNet(nn.Module):
    """The original document's network, transcribed verbatim (minus the commented-out layers)."""

    def __init__(self) -> None:
        super().__init__()
        self.max_pool = nn.MaxPool2d(2, 2)
        drop = 0.05

        def block(c_in, c_out, k, **kw):
            return [
                nn.Conv2d(c_in, c_out, k, bias=False, **kw),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.Dropout2d(drop),
            ]

        self.conv_block1 = nn.Sequential(*block(1, 8, 3, padding=1), *block(8, 24, 3, padding=1))
        self.transition1 = nn.Sequential(*block(24, 8, 1))
        self.conv_block2 = nn.Sequential(*block(8, 16, 3), *block(16, 24, 3))
        self.transition2 = nn.Sequential(*block(24, 8, 1))
        self.conv_block3 = nn.Sequential(*block(8, 16, 3), *block(16, 32, 3))
        self.gap = nn.Sequential(nn.AvgPool2d(6))
        self.dense = nn.Linear(32, 10)

    def forward(self, x):
        x = self.transition1(self.max_pool(self.conv_block1(x)))
        x = self.conv_block3(self.transition2(self.conv_block2(x)))
        x = self.gap(x).view(-1, 32)
        return F.log_softmax(self.dense(x), dim=1)


def test_net_has_13154_params_by_hand():
    assert count_params(Net()) == NET_PARAMS_BY_HAND == 13_154
    assert sum(p.numel() for p in Net().parameters()) == NET_PARAMS_BY_HAND  # nothing frozen
    assert NET_PARAMS_BY_HAND < MAX_PARAMS


def test_net_params_by_torchsummary(capsys):
    summary(Net(), (1, 28, 28), device="cpu")
    line = re.search(r"Trainable params: ([\d,]+)", capsys.readouterr().out)
    assert line and int(line.group(1).replace(",", "")) == 13_154


def test_net_layers_are_the_seeds():
    net = Net()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(tuple(c.weight.shape), c.padding[0]) for c in convs] == ORIGINAL_CONVS
    assert all(c.bias is None for c in convs)
    assert [
        m.num_features for m in net.modules() if isinstance(m, nn.BatchNorm2d)
    ] == ORIGINAL_BATCHNORMS
    assert tuple(net.dense.weight.shape) == (10, 32) and tuple(net.dense.bias.shape) == (10,)


def test_net_computes_what_the_seed_computes():
    """Given the original network's weights, in order, Net gives the same outputs (eval mode)."""
    torch.manual_seed(0)
    original = OriginalNet()
    with torch.no_grad():  # BatchNorm away from the identity, so that it counts
        for m in original.modules():
            if isinstance(m, nn.BatchNorm2d):
                (
                    m.weight.uniform_(0.5, 1.5),
                    m.bias.normal_(),
                    m.running_mean.normal_(),
                    m.running_var.uniform_(0.5, 2),
                )
    net = Net()
    net.load_state_dict(dict(zip(net.state_dict(), original.state_dict().values(), strict=True)))
    x = torch.randn(8, 1, 28, 28)
    torch.testing.assert_close(net.eval()(x), original.eval()(x))


@pytest.mark.parametrize("model", [Net(), TinyNet()], ids=["net", "tiny"])
def test_output_is_log_probs(model):
    out = model.eval()(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(5))
    assert (out <= 0).all()


# TinyNet's layers by hand, as for Net above.
TINY_PARAMS_BY_HAND = (
    3 * 3 * 1 * 8
    + 2 * 8  # 1 -> 8, 3x3, pad 1
    + 3 * 3 * 8 * 12
    + 2 * 12  # 8 -> 12, 3x3, pad 1
    + 1 * 1 * 12 * 8
    + 2 * 8  # 12 -> 8, 1x1
    + 3 * 3 * 8 * 12
    + 2 * 12  # 8 -> 12
    + 3 * 3 * 12 * 16
    + 2 * 16  # 12 -> 16
    + 1 * 1 * 16 * 8
    + 2 * 8  # 16 -> 8, 1x1
    + 3 * 3 * 8 * 16
    + 2 * 16  # 8 -> 16
    + 3 * 3 * 16 * 16
    + 2 * 16  # 16 -> 16
    + 16 * 10
    + 10  # dense
)


def test_tiny_params_by_hand():
    assert count_params(TinyNet()) == TINY_PARAMS_BY_HAND == 7_570


def test_build_model():
    assert isinstance(build_model("net"), Net)
    assert build_model("net", dropout=0.2).conv_block1[0][3].p == 0.2
    assert not any(isinstance(m, nn.Dropout2d) for m in build_model("net", dropout=0.0).modules())


def test_the_course_registry_holds_the_course_models():
    """Run apart, so that no lab module imported by another test has added its models."""
    import subprocess
    import sys

    code = "from mnist_lib.model import MODELS; print(' '.join(MODELS))"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert names.split() == ["net", "tiny"]
    assert {"net", "tiny"} <= set(MODELS)
