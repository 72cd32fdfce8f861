"""How training is made fast without changing what it computes: the step that the loop calls.

`make_step` picks, once per run, how a batch's gradient is computed: the plain forward and
backward pass of `mnist_lib.train.PlainStep`, or `ShardedStep`, which splits the batch into
BatchNorm shards that run in parallel threads on a CPU and replay CUDA graphs on a GPU.

On a GPU a run is trained by `StackedTrainer` instead, whose whole step is one CUDA graph, and
which trains several seeds in that one step, side by side on CUDA streams (`trains_together`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..train import PlainStep, Step
from .shards import ShardedStep, worker_threads
from .stacked import Member, StackedTrainer


def make_step(
    model: nn.Module, shards: int, amp: torch.dtype | None, smoothing: float = 0.0
) -> Step:
    """The step for ``model``: sharded on a GPU (for its CUDA graphs) or when there are shards."""
    device = next(model.parameters()).device
    if shards == 1 and device.type != "cuda":
        return PlainStep(model, amp, smoothing)
    return ShardedStep(model, shards, amp, smoothing)


def trains_together(device: torch.device) -> bool:
    """Whether runs on ``device`` are trained by `StackedTrainer`: on a GPU. On a CPU one seed at
    a time is faster (README, Speed: seeds)."""
    return device.type == "cuda"


__all__ = [
    "Member",
    "ShardedStep",
    "StackedTrainer",
    "make_step",
    "trains_together",
    "worker_threads",
]
