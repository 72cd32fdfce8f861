"""The lab's networks: the ablation's variants of Net, MicroNet, and the design search's specs,
each counted by hand."""

import pytest
import torch
from torch import nn

from mnist_lib.lab.experiments.designs import SpecNet, SqueezeExcite
from mnist_lib.lab.experiments.variants import register
from mnist_lib.model import build_model, count_params
from mnist_lib.train import Ema

register()


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
        3 * 3 * 1 * 8
        + 2 * 8
        + 3 * 3 * 8 * 16
        + 2 * 16
        + (9 * 16 + 16 * 24 + 2 * 24)
        + 3 * (9 * 24 + 24 * 24 + 2 * 24)
        + 24 * 10
        + 10
    )
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
    for net in (silu, SpecNet("silu C8 p s8 r8")):  # every kind of block, shortcut included
        kinds = {type(m) for m in net.modules()}
        assert nn.SiLU in kinds and nn.ReLU not in kinds


def test_squeeze_excite_scales_each_channel_by_a_gate_from_all_channel_averages():
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
    by_hand = (
        3 * 3 * 1 * 8
        + 2 * 8
        + 3 * 3 * 8 * 16
        + 2 * 16
        + (9 * 16 + 16 * 32 + 2 * 32)
        + (9 * 32 + 32 * 32 + 2 * 32)
        + 3 * (2 * 32)  # the three a: a BatchNorm each, no convolutions
        + 32 * 10
        + 10
    )
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
    # design-f3: C8 C16 p f24 f24 f24, a 5x5 per input channel, a 1x1 and a BatchNorm per block
    by_hand = (
        3 * 3 * 1 * 8
        + 2 * 8
        + 3 * 3 * 8 * 16
        + 2 * 16
        + (25 * 16 + 16 * 24 + 2 * 24)
        + 2 * (25 * 24 + 24 * 24 + 2 * 24)
        + 24 * 10
        + 10
    )
    net = build_model("design-f3", dropout=0.0)
    assert count_params(net) == by_hand == 4_802
    assert net.features[3][0].kernel_size == (5, 5) and net.features[3][0].groups == 16
    assert net.features[3][0].padding == (0, 0)
    # 28 -> 14 -> 10 -> 6: the class templates cover 6 x 6, and the network runs
    small = SpecNet("C8 p f10 f10 k")
    assert small.templates.kernel_size == (6, 6)
    assert small(torch.randn(2, 1, 28, 28)).shape == (2, 10)
