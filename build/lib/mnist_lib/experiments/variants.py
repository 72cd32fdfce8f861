"""Models that exist only for experiments: the ablation's variants of `Net`, and the candidates of
the search for a network under 5,000 parameters (written as layer specs, see `designs`)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..model import Net, conv_bn
from .designs import DESIGNS, SpecNet


def net_without_batchnorm(dropout: float = 0.05) -> Net:
    """The ablation's "no BatchNorm": every BatchNorm of `Net` becomes an identity, and every
    convolution gets the bias that BatchNorm's shift stood in for."""
    net = Net(dropout)
    for block in net.modules():
        if isinstance(block, nn.Sequential) and isinstance(block[0], nn.Conv2d):
            conv = block[0]
            block[0] = nn.Conv2d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,
                padding=conv.padding,
                bias=True,
            )
            block[1] = nn.Identity()
    return net


class FlatNet(Net):
    """The ablation's "no GAP": `Net` with flatten + dense in place of GAP + Linear(32, 10).

    A dense layer on 32 x 6 x 6 features would cost 11,530 weights; to stay within the budget
    the last conv gives 10 channels, and flatten(10 x 6 x 6) -> 10 brings the total to 13,222.
    """

    def __init__(self, dropout: float = 0.05) -> None:
        super().__init__(dropout)
        self.conv_block3[1] = conv_bn(16, 10, 3, 0, dropout)  # (B, 10, 6, 6)
        self.gap = nn.Identity()  # forward's flatten then gives (B, 360)
        self.dense = nn.Linear(10 * 6 * 6, 10)


def spec_factory(spec: str) -> Callable[..., nn.Module]:
    def build(dropout: float = 0.0) -> nn.Module:
        return SpecNet(spec, dropout)

    return build


VARIANTS: dict[str, Callable[..., nn.Module]] = {
    "net-nobn": net_without_batchnorm,
    "net-flat": FlatNet,
    **{name: spec_factory(spec) for name, spec in DESIGNS.items()},
}
