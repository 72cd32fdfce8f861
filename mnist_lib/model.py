"""The networks: the original document's ``Net``, and ``TinyNet`` and ``MicroNet``, smaller."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError


def conv_bn(c_in: int, c_out: int, kernel: int, padding: int, dropout: float) -> nn.Sequential:
    """Conv (no bias: BatchNorm's shift replaces it) -> BatchNorm -> ReLU, then Dropout2d if
    ``dropout`` > 0."""
    layers = [
        nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    ]
    return nn.Sequential(*layers, nn.Dropout2d(dropout)) if dropout else nn.Sequential(*layers)


class Net(nn.Module):
    """The original document's network: 13,154 parameters, layer shapes unchanged.

    ``dropout`` is the original Dropout2d rate (0.05); the training recipe sets its own (none).
    """

    def __init__(self, dropout: float = 0.05) -> None:
        super().__init__()
        block = partial(conv_bn, dropout=dropout)
        self.max_pool = nn.MaxPool2d(2, 2)
        self.conv_block1 = nn.Sequential(block(1, 8, 3, 1), block(8, 24, 3, 1))  # 28x28
        self.transition1 = block(24, 8, 1, 0)  # after the pool: 14x14
        self.conv_block2 = nn.Sequential(block(8, 16, 3, 0), block(16, 24, 3, 0))  # 10x10
        self.transition2 = block(24, 8, 1, 0)
        self.conv_block3 = nn.Sequential(block(8, 16, 3, 0), block(16, 32, 3, 0))  # 6x6
        self.gap = nn.AvgPool2d(6)
        self.dense = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_block1(x)  # (B, 24, 28, 28)
        x = self.max_pool(x)  # (B, 24, 14, 14)
        x = self.transition1(x)  # (B, 8, 14, 14)
        x = self.conv_block2(x)  # (B, 24, 10, 10)
        x = self.transition2(x)  # (B, 8, 10, 10)
        x = self.conv_block3(x)  # (B, 32, 6, 6)
        x = self.gap(x).flatten(1)  # (B, 32)
        return F.log_softmax(self.dense(x), dim=1)


class TinyNet(nn.Module):
    """A narrower cousin of ``Net`` for the "how small can it go" question: 7,570 parameters.

    The same plan (two 3x3 convs, max-pool, 1x1 squeeze, two 3x3 convs, 1x1 squeeze, two 3x3
    convs, GAP, dense) with the widest layers cut from 24/24/32 channels to 12/16/16.
    """

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        block = partial(conv_bn, dropout=dropout)
        self.features = nn.Sequential(
            block(1, 8, 3, 1),  # (B, 8, 28, 28)
            block(8, 12, 3, 1),  # (B, 12, 28, 28)
            nn.MaxPool2d(2, 2),  # (B, 12, 14, 14)
            block(12, 8, 1, 0),  # (B, 8, 14, 14)
            block(8, 12, 3, 0),  # (B, 12, 12, 12)
            block(12, 16, 3, 0),  # (B, 16, 10, 10)
            block(16, 8, 1, 0),  # (B, 8, 10, 10)
            block(8, 16, 3, 0),  # (B, 16, 8, 8)
            block(16, 16, 3, 0),  # (B, 16, 6, 6)
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.dense = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gap(self.features(x)).flatten(1)  # (B, 16)
        return F.log_softmax(self.dense(x), dim=1)


def separable(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    """A depthwise-separable 3x3 convolution, unpadded: a 3x3 filter per input channel (it looks
    at neighbours), then a 1x1 convolution (it mixes channels), then BatchNorm -> ReLU; 9 c_in +
    c_in c_out weights instead of a 3x3 convolution's 9 c_in c_out."""
    layers = [
        nn.Conv2d(c_in, c_in, 3, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    ]
    return nn.Sequential(*layers, nn.Dropout2d(dropout)) if dropout else nn.Sequential(*layers)


class MicroNet(nn.Module):
    """Under 5,000 parameters: the designs the search on the validation split chose.

    ``Net``'s start (two 3x3 convolutions at full resolution, the max-pool), then four
    depthwise-separable 3x3 convolutions of 24 channels where ``Net`` has 1x1 transitions and
    3x3 convolutions, GAP, dense. ``width`` is the second convolution's channels: 16 for `micro`,
    the search's first pick, or 19 for `micro19`, the top row of its second round (README, The
    smaller networks).
    """

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


# The models of the course, by the name the command line and the notebooks use.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "net": Net,
    "tiny": TinyNet,
    "micro": MicroNet,
    "micro19": partial(MicroNet, width=19),
}


def experiment_models() -> dict[str, Callable[..., nn.Module]]:
    """Models that exist only for experiments (the ablation's variants, the design search)."""
    from .experiments.variants import VARIANTS

    return VARIANTS


def model_names(course_only: bool = False) -> list[str]:
    return list(MODELS) if course_only else [*MODELS, *experiment_models()]


def build_model(name: str, dropout: float | None = None) -> nn.Module:
    """A model by name; ``dropout=None`` keeps the model's own default rate."""
    factory = MODELS.get(name) or experiment_models().get(name)
    if factory is None:
        raise UserError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return factory() if dropout is None else factory(dropout=dropout)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
