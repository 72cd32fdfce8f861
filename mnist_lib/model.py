"""The networks of the course: the original document's ``Net``, and the narrower ``TinyNet``."""

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


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
    """The original document's network, layer shapes unchanged.

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
    """``Net``'s plan (two 3x3 convs, max-pool, 1x1 squeeze, two 3x3 convs, 1x1 squeeze, two 3x3
    convs, GAP, dense) with its widest layers cut from 24/24/32 channels to 12/16/16."""

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


# The models by the name the command line and the notebooks use. The lab adds its own
# (mnist_lib.lab.experiments.variants) when it is imported.
MODELS: dict[str, Callable[..., nn.Module]] = {"net": Net, "tiny": TinyNet}


def build_model(name: str, dropout: float | None = None) -> nn.Module:
    """A model by name; ``dropout=None`` keeps the model's own default rate."""
    factory = MODELS[name]
    return factory() if dropout is None else factory(dropout=dropout)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
