"""The networks: parameter budget counted by hand and by torchsummary, the original layer shapes."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchsummary import summary

from mnist_lib import MAX_PARAMS, Net, TinyNet, UserError, build_model, count_params

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
    with pytest.raises(UserError, match="nope"):
        build_model("nope")


def test_ablation_variants_stay_in_budget():
    # net-nobn: every BatchNorm (2 * 136 channels) goes, every conv gains a bias (136).
    assert count_params(build_model("net-nobn")) == 13_154 - 2 * 136 + 136
    # net-flat: last conv 16->10 (1,440 + 20 BN), flatten(10*6*6) -> 10 (3,610) in place of
    # 16->32 (4,608 + 64 BN) and GAP + Linear(32, 10) (330).
    assert (
        count_params(build_model("net-flat")) == 13_154 - (4_608 + 64) - 330 + (1_440 + 20) + 3_610
    )


def test_a_design_spec_counts_like_by_hand():
    # design-h: C8 C16 p d24 d24 d24 d24; a separable block is a 3x3 per input channel, a 1x1 to
    # the output channels and a BatchNorm: 9 c_in + c_in c_out + 2 c_out
    by_hand = (
        3 * 3 * 1 * 8 + 2 * 8 + 3 * 3 * 8 * 16 + 2 * 16
        + (9 * 16 + 16 * 24 + 2 * 24) + 3 * (9 * 24 + 24 * 24 + 2 * 24)
        + 24 * 10 + 10
    )  # fmt: skip
    assert count_params(build_model("design-h")) == by_hand == 4_618


@pytest.mark.parametrize(
    ("model", "design", "params"), [("micro", "design-h", 4_618), ("micro19", "design-w", 4_939)]
)
def test_micronet_is_the_design_the_search_chose(model, design, params):
    """MicroNet written out is the search's design-h (design-w with ``width`` 19): the same
    layers, the same initial weights for a seed, the same outputs."""
    torch.manual_seed(3)
    micro = build_model(model, dropout=0.0)
    torch.manual_seed(3)
    design = build_model(design, dropout=0.0)
    assert count_params(micro) == count_params(design) == params
    for a, b in zip(micro.state_dict().values(), design.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(micro.eval()(x), design.eval()(x))


def test_a_shortcut_adds_its_cropped_input_and_no_weights():
    """design-wr is design-w with shortcuts around its last three blocks: the same weights for a
    seed, and each of those blocks' outputs is ReLU(block(x) + x without its border pixels)."""
    from mnist_lib.experiments.designs import SpecNet

    torch.manual_seed(5)
    plain = build_model("design-w", dropout=0.0)
    torch.manual_seed(5)
    shortcut = build_model("design-wr", dropout=0.0)
    assert count_params(shortcut) == count_params(plain) == 4_939
    for a, b in zip(plain.state_dict().values(), shortcut.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = torch.randn(2, 1, 28, 28)
    plain.eval(), shortcut.eval()
    hidden = plain.features[:4](x)  # up to the first separable block: 24 channels, 12x12
    assert torch.equal(shortcut.features[:4](x), hidden)
    for layer in plain.features[4:]:
        conv_bn = layer[:-1]  # the block without its ReLU
        hidden = torch.relu(conv_bn(hidden) + hidden[:, :, 1:-1, 1:-1])
    assert torch.allclose(shortcut.features(x), hidden)
    assert not torch.allclose(plain.features(x), hidden)
    with pytest.raises(ValueError, match="as many channels"):
        SpecNet("C8 r16")
    # a shortcut block shrinks the map like an unpadded one: 28 -> 14 -> 12 -> 10, then the
    # class templates must cover exactly those 10 x 10
    templates = SpecNet("C8 p d10 r10 k").templates
    assert templates.kernel_size == (10, 10)


def test_a_silu_spec_changes_only_the_activation():
    torch.manual_seed(5)
    relu = build_model("design-w", dropout=0.0)
    torch.manual_seed(5)
    silu = build_model("design-ws", dropout=0.0)
    for a, b in zip(relu.state_dict().values(), silu.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    from mnist_lib.experiments.designs import SpecNet

    for net in (silu, SpecNet("silu C8 p s8 r8")):  # every kind of block, shortcut included
        kinds = {type(m) for m in net.modules()}
        assert nn.SiLU in kinds and nn.ReLU not in kinds


def test_squeeze_excite_scales_each_channel_by_a_gate_from_all_channel_averages():
    from mnist_lib.experiments.designs import SpecNet, SqueezeExcite

    gates = 2 * (24 * 3 + 3 + 3 * 24 + 24)  # two e3 on 24 channels: down and up, with biases
    assert count_params(build_model("design-he", dropout=0.0)) == 4_618 + gates == 4_960
    torch.manual_seed(5)
    se = SqueezeExcite(4, 2, nn.ReLU())
    x = torch.randn(2, 4, 5, 5)
    means = x.mean((2, 3))  # (2, 4): one average per image and channel
    hidden = torch.relu(means @ se.down.weight[:, :, 0, 0].T + se.down.bias)
    gate = torch.sigmoid(hidden @ se.up.weight[:, :, 0, 0].T + se.up.bias)
    assert torch.allclose(se(x), x * gate[:, :, None, None])
    # it keeps size and channels: the class templates after it cover the map before it
    assert SpecNet("C8 p d10 e2 k").templates.kernel_size == (12, 12)


def test_an_again_layer_shares_its_convolutions_and_keeps_its_own_batchnorm():
    """design-k2 is C8 C16 p d32 d32 a a a: each ``a`` runs the last d32's 3x3 and 1x1 again
    (the same tensors, counted once) with a BatchNorm of its own."""
    from mnist_lib.ema import Ema
    from mnist_lib.experiments.designs import SpecNet

    by_hand = (
        3 * 3 * 1 * 8 + 2 * 8 + 3 * 3 * 8 * 16 + 2 * 16
        + (9 * 16 + 16 * 32 + 2 * 32) + (9 * 32 + 32 * 32 + 2 * 32)
        + 3 * (2 * 32)  # the three a: a BatchNorm each, no convolutions
        + 32 * 10 + 10
    )  # fmt: skip
    torch.manual_seed(5)
    net = build_model("design-k2", dropout=0.0).eval()
    assert count_params(net) == by_hand == 3_890
    features = net.features  # C8 C16 p d32 d32 a a a
    depthwise, pointwise, _, _ = features[4]
    x = torch.randn(2, 1, 28, 28)
    hidden = features[:5](x)
    for again in features[5:]:
        assert again[0] is depthwise and again[1] is pointwise and again[2] is not features[4][2]
        hidden = again[3](again[2](pointwise(depthwise(hidden))))
    assert torch.equal(features(x), hidden)
    # the EMA's copy shares the same way, so it averages each weight once
    ema = Ema(net, 0.999).module
    assert ema.features[7][0] is ema.features[4][0]
    assert len(list(ema.parameters())) == len(list(net.parameters()))
    # size: 28 -> 14 -> 12 -> 10, then each a takes 2 more, like the d it repeats
    assert SpecNet("C8 p d10 d10 a a k").templates.kernel_size == (6, 6)
    # with dropout after each layer, a still repeats the d before it, not the dropout
    dropped = SpecNet("C8 p d10 d10 a", dropout=0.1).features
    assert isinstance(dropped[-3], nn.Dropout2d) and dropped[-2][0] is dropped[-4][0]
    for spec, error in [
        ("C8 p a", "repeats an unpadded c or d layer"),
        ("C8 p d10 r10 a", "repeats an unpadded c or d layer"),  # not the d before the r
        ("C8 p s10 s10 a", "repeats an unpadded c or d layer"),  # s has a BatchNorm inside
        ("C8 d16 a", "16 channels in and out"),
        ("C8 d8 a2", "takes no number"),
    ]:
        with pytest.raises(ValueError, match=error):
            SpecNet(spec)


def test_a_five_by_five_block_counts_like_by_hand_and_shrinks_the_map_by_four():
    from mnist_lib.experiments.designs import SpecNet

    # design-f3: C8 C16 p f24 f24 f24, a 5x5 per input channel, a 1x1 and a BatchNorm per block
    by_hand = (
        3 * 3 * 1 * 8 + 2 * 8 + 3 * 3 * 8 * 16 + 2 * 16
        + (25 * 16 + 16 * 24 + 2 * 24) + 2 * (25 * 24 + 24 * 24 + 2 * 24)
        + 24 * 10 + 10
    )  # fmt: skip
    net = build_model("design-f3", dropout=0.0)
    assert count_params(net) == by_hand == 4_802
    assert net.features[3][0].kernel_size == (5, 5) and net.features[3][0].groups == 16
    assert net.features[3][0].padding == (0, 0)
    # 28 -> 14 -> 10 -> 6: the class templates cover 6 x 6, and the network runs
    small = SpecNet("C8 p f10 f10 k")
    assert small.templates.kernel_size == (6, 6)
    assert small(torch.randn(2, 1, 28, 28)).shape == (2, 10)
