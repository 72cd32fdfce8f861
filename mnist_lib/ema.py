"""An exponential moving average (EMA) of a model's weights and BatchNorm buffers: the copy that
is evaluated."""

from __future__ import annotations

import copy

import torch
from torch import nn


class Ema:
    """``module`` follows ``model`` as avg <- avg + (1 - d) * (model - avg) after every step.

    The decay ramps up as d = min(decay, (1 + n) / (warmup + n)) over the n updates so far, so
    that a short run is not dominated by the random initial weights; the first update copies the
    model.
    All floating-point tensors are updated in one fused call, and d is a plain number: no per-tensor
    Python loop, and no GPU sync.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: int = 10) -> None:
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay, self.warmup = decay, warmup
        self.updates = 0
        # The tensor pairs (average, model), found once: walking the modules every step costs more
        # than the update.
        pairs = list(
            zip(
                [*self.module.parameters(), *self.module.buffers()],
                [*model.parameters(), *model.buffers()],
                strict=True,
            )
        )
        self.floats = (
            [a for a, m in pairs if a.is_floating_point()],
            [m for a, m in pairs if a.is_floating_point()],
        )
        self.counters = (
            [a for a, m in pairs if not a.is_floating_point()],  # BatchNorm's batch counters:
            [m for a, m in pairs if not a.is_floating_point()],
        )  # copied, not averaged

    def next_weight(self) -> float:
        """The next update's weight 1 - d of the model (1 at the first update: a copy)."""
        if self.updates == 0:
            return 1.0
        return 1 - min(self.decay, (1 + self.updates) / (self.warmup + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the model's weights (call after every optimizer step)."""
        if self.updates == 0:
            torch._foreach_copy_(*self.floats)
        else:
            torch._foreach_lerp_(*self.floats, self.next_weight())
        if self.counters[0]:
            torch._foreach_copy_(*self.counters)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]
