"""Models that exist for experiments: the ablation's variants of `Net`, `MicroNet` (the design
search's picks under 5,000 parameters) and the search's candidates, written as layer specs
(`designs`). `register` adds them, and MicroNet's recipes, to the course's registries."""

from collections.abc import Callable
from dataclasses import replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ...config import RECIPES, TrainConfig
from ...model import MODELS, Net, conv_bn
from .designs import DESIGNS, SpecNet


def net_without_batchnorm(dropout: float = 0.05) -> Net:
    """The ablation's "no BatchNorm": every BatchNorm of `Net` becomes an identity, and every
    convolution gets the bias that BatchNorm's shift stood in for."""
    net = Net(dropout)
    for block in net.modules():
        if isinstance(block, nn.Sequential) and isinstance(block[0], nn.Conv2d):
            conv = block[0]
            block[0] = nn.Conv2d(
                conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding
            )
            block[1] = nn.Identity()
    return net


class FlatNet(Net):
    """The ablation's "no GAP": `Net` with flatten + dense in place of GAP + Linear(32, 10). To
    stay within the budget the last conv gives 10 channels, flattened (10 x 6 x 6) into the
    dense layer."""

    def __init__(self, dropout: float = 0.05) -> None:
        super().__init__(dropout)
        self.conv_block3[1] = conv_bn(16, 10, 3, 0, dropout)  # (B, 10, 6, 6)
        self.gap = nn.Identity()  # forward's flatten then gives (B, 360)
        self.dense = nn.Linear(10 * 6 * 6, 10)


def separable(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    """A depthwise-separable 3x3 convolution, unpadded: a 3x3 filter per input channel, then a
    1x1 convolution that mixes channels, then BatchNorm -> ReLU."""
    layers = [
        nn.Conv2d(c_in, c_in, 3, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    ]
    return nn.Sequential(*layers, nn.Dropout2d(dropout)) if dropout else nn.Sequential(*layers)


class MicroNet(nn.Module):
    """`Net`'s start (two 3x3 convolutions at full resolution, the max-pool), then four
    depthwise-separable 3x3 convolutions of 24 channels, GAP, dense. ``width`` is the second
    convolution's channels: 16 for `micro` (design-h), 19 for `micro19` (design-w)."""

    def __init__(self, dropout: float = 0.0, width: int = 16) -> None:
        super().__init__()
        block = partial(conv_bn, dropout=dropout)
        self.features = nn.Sequential(
            block(1, 8, 3, 1),  # (B, 8, 28, 28)
            block(8, width, 3, 1),  # (B, width, 28, 28)
            nn.MaxPool2d(2, 2),  # (B, width, 14, 14)
            separable(width, 24, dropout),  # (B, 24, 12, 12)
            separable(24, 24, dropout),  # (B, 24, 10, 10)
            separable(24, 24, dropout),  # (B, 24, 8, 8)
            separable(24, 24, dropout),  # (B, 24, 6, 6)
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.dense = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gap(self.features(x)).flatten(1)  # (B, 24)
        return F.log_softmax(self.dense(x), dim=1)


def spec_factory(spec: str) -> Callable[..., nn.Module]:
    def build(dropout: float = 0.0) -> nn.Module:
        return SpecNet(spec, dropout)

    return build


VARIANTS: dict[str, Callable[..., nn.Module]] = {
    "micro": MicroNet,
    "micro19": partial(MicroNet, width=19),
    "net-nobn": net_without_batchnorm,
    "net-flat": FlatNet,
    **{name: spec_factory(spec) for name, spec in DESIGNS.items()},
}
# TinyNet's recipe with the peak learning rate that did best on the validation split.
LAB_RECIPES: dict[str, TrainConfig] = {
    "micro": replace(RECIPES["tiny"], model="micro", lr=0.2),
    "micro19": replace(RECIPES["tiny"], model="micro19", lr=0.2),
}


def register() -> None:
    """Make the lab's models and recipes known to `build_model`, `recipe` and the checks."""
    MODELS.update(VARIANTS)
    RECIPES.update(LAB_RECIPES)
