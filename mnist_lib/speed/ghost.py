"""A batch's BatchNorm shards in one pass: each shard normalised by its own statistics.

`ShardedStep` and the shard loop of `StackedTrainer` run the network once per shard, so that
BatchNorm sees shards of the batch (the recipes' "ghost batches"). `ShardBatchNorm` computes the
same in one pass over the whole batch: it normalises each consecutive slice of ``shards`` images
by that slice's mean and variance, and keeps the first shard's running statistics, as the loop
does. Every other layer works per image, so one pass over the batch is the loop's forward and
backward pass up to rounding, with a GPU's kernel launches halved (two shards).
"""

from __future__ import annotations

import torch
from torch import nn


class ShardBatchNorm(nn.BatchNorm2d):
    """``bn`` (its weights and statistics copied) with training-mode statistics per shard of the
    batch; in eval mode, and with one shard, it is `nn.BatchNorm2d`."""

    def __init__(self, bn: nn.BatchNorm2d, shards: int) -> None:
        weight = bn.weight
        super().__init__(
            bn.num_features, bn.eps, bn.momentum, device=weight.device, dtype=weight.dtype
        )
        self.load_state_dict(bn.state_dict())
        self.shards = shards

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.shards == 1:
            return super().forward(x)
        if len(x) % self.shards:
            raise ValueError(f"a batch of {len(x)} does not split into {self.shards} equal shards")
        # (shards, B / shards, C, H, W), statistics in fp32 at least (as PyTorch's BatchNorm)
        xs = x.unflatten(0, (self.shards, -1)).to(torch.promote_types(x.dtype, torch.float32))
        var, mean = torch.var_mean(xs, dim=(1, 3, 4), correction=0, keepdim=True)
        scale = torch.rsqrt(var + self.eps) * self.weight.view(-1, 1, 1)
        out = (xs - mean) * scale + self.bias.view(-1, 1, 1)
        with torch.no_grad():
            n = xs[0].numel() // self.num_features
            self.running_mean.lerp_(mean[0].flatten(), self.momentum)
            self.running_var.lerp_(var[0].flatten() * (n / (n - 1)), self.momentum)
            self.num_batches_tracked.add_(1)
        return out.flatten(0, 1).to(x.dtype)


def shard_batchnorms(model: nn.Module, shards: int) -> nn.Module:
    """``model`` with every `nn.BatchNorm2d` replaced (in place) by a `ShardBatchNorm` holding
    its weights and statistics."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is not nn.BatchNorm2d:
                continue
            if not (child.affine and child.track_running_stats and child.momentum is not None):
                raise ValueError("cannot shard a BatchNorm without weights, statistics or momentum")
            setattr(module, name, ShardBatchNorm(child, shards))
    return model
