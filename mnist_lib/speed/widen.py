"""Copies of a network side by side as one network: grouped convolutions, one group per copy.

Copy r's channels are the r-th block of every layer's channels. A convolution becomes one grouped
convolution (its groups times the copies), a BatchNorm one BatchNorm over all the channels (so each
copy keeps its own statistics), a Linear layer `GroupedLinear`; pooling, ReLU and dropout work
per channel already. The input holds one image per copy as its channels, (B, copies, H, W), and
the output is (B, 10, copies): each copy's log-probabilities, with the classes on dim 1 where the
models' ``log_softmax(..., dim=1)`` and the losses expect them.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class GroupedLinear(nn.Module):
    """Linear layers side by side: (B, copies x in) -> (B, out, copies). Its weight and bias are
    the copies' stacked along dim 0, as every widened layer's are."""

    def __init__(self, copies: int, in_features: int) -> None:
        super().__init__()
        self.copies, self.in_features = copies, in_features
        self.register_parameter("weight", None)  # (copies x out, in), set by `wide_layer`
        self.register_parameter("bias", None)  # (copies x out) or none

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(len(x), self.copies, self.in_features)
        weight = self.weight.view(self.copies, -1, self.in_features)
        out = torch.einsum("bci,coi->boc", x, weight)
        return out if self.bias is None else out + self.bias.view(self.copies, -1).T


def wide_layer(layers: list[nn.Module]) -> nn.Module | None:
    """The layer that computes ``layers`` (one per copy) side by side; None for a layer without
    weights, which works per channel as it is."""
    first, n = layers[0], len(layers)
    if isinstance(first, nn.Conv2d):
        wide = nn.Conv2d(
            first.in_channels * n,
            first.out_channels * n,
            first.kernel_size,
            first.stride,
            first.padding,
            first.dilation,
            first.groups * n,
            first.bias is not None,
            first.padding_mode,
            device="meta",
        )
    elif isinstance(first, nn.BatchNorm2d):
        if not (first.affine and first.track_running_stats):
            raise ValueError(
                "cannot put BatchNorm layers without weights or statistics side by side"
            )
        wide = nn.BatchNorm2d(first.num_features * n, first.eps, first.momentum, device="meta")
    elif isinstance(first, nn.Linear):
        wide = GroupedLinear(n, first.in_features)
    elif any(True for _ in first.parameters(recurse=False)):
        raise ValueError(f"cannot put {type(first).__name__} layers side by side")
    else:
        return None
    for name, _ in first.named_parameters(recurse=False):
        cat = torch.cat([getattr(m, name).detach() for m in layers])
        setattr(wide, name, nn.Parameter(cat))
    for name, value in first.named_buffers(recurse=False):
        if value.dim() == 0:  # BatchNorm's step counter: the same in every copy
            setattr(wide, name, value.clone())
        else:
            setattr(wide, name, torch.cat([getattr(m, name) for m in layers]))
    return wide


def can_widen(model: nn.Module) -> bool:
    """False for a network that says (``side_by_side = False``) that copies side by side would mix
    in it."""
    return getattr(model, "side_by_side", True)


def widen(models: list[nn.Module]) -> nn.Module:
    """One network computing ``models`` (copies of one architecture) side by side, starting from
    their weights and statistics (copied)."""
    if not can_widen(models[0]):
        raise ValueError(f"{type(models[0]).__name__} says it cannot be put side by side")
    linears = [m for m in models[0].modules() if isinstance(m, nn.Linear)]
    if len(linears) > 1:  # a GroupedLinear's output (B, out, copies) is no next Linear's input
        raise ValueError("cannot put a network with more than one Linear layer side by side")
    wide = copy.deepcopy(models[0])
    by_name = [dict(m.named_modules()) for m in models]
    for name, module in list(wide.named_modules()):
        for child_name, _ in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            replacement = wide_layer([modules[full] for modules in by_name])
            if replacement is not None:
                setattr(module, child_name, replacement)
    return wide


def copy_rows(wide: torch.Tensor, copies: int) -> torch.Tensor:
    """``wide`` (a tensor of a widened network) as (copies, *one copy's shape); a step counter
    (0-dim) as the same value for each copy."""
    return wide.expand(copies) if wide.dim() == 0 else wide.view(copies, -1, *wide.shape[1:])
