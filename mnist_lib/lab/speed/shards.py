"""`forward_backward` with its ghost batches on parallel threads, for a CPU (`fit`'s ``step``).

`mnist_lib.train.forward_backward` runs a step's ghost batches one after the other through the
model. `ShardedStep` gives each ghost batch past the first its own copy of the model (a replica
that takes the model's weights and BatchNorm statistics before every step) and runs them at the
same time, one thread per core, each thread with its share of the intra-op threads: on two
cores, two small passes on one core each beat two that split every small operation across both.
Afterwards it leaves in the model what the loop leaves there: the gradients summed, and the
running statistics as if each ghost batch had updated them in turn.
"""

import copy
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from ...config import TrainConfig
from ...device import autocast
from ...train import training_loss


def worker_threads(shards: int) -> int:
    """Threads that run ghost batches at the same time: one per intra-op thread, at most one per
    ghost batch."""
    return max(1, min(shards, torch.get_num_threads()))


class ShardedStep:
    """Called as `forward_backward` is; builds its replicas and threads at the first call."""

    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.pool: ThreadPoolExecutor | None = None

    def build(self, model: nn.Module, shards: int) -> None:
        self.model = model
        self.replicas = [copy.deepcopy(model) for _ in range(shards - 1)]
        self.workers = worker_threads(shards)
        self.threads_each = max(1, torch.get_num_threads() // self.workers)
        if self.workers > 1:
            self.pool = ThreadPoolExecutor(
                self.workers - 1, initializer=torch.set_num_threads, initargs=(self.threads_each,)
            )
        # BatchNorm layers, aligned across the model and its replicas, for the statistics.
        self.norms = [
            [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            for net in (model, *self.replicas)
        ]

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, amp
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if model is not self.model:
            self.build(model, cfg.shards)
        with torch.no_grad():
            start = [[t.clone() for t in bn.buffers()] for bn in self.norms[0]]
            for replica in self.replicas:
                for mine, theirs in ((replica.parameters(), model.parameters()),
                                     (replica.buffers(), model.buffers())):  # fmt: skip
                    for a, b in zip(mine, theirs, strict=True):
                        a.copy_(b)
                replica.zero_grad(set_to_none=True)
        nets = [model, *self.replicas]
        jobs = list(zip(nets, x.tensor_split(cfg.shards), y.tensor_split(cfg.shards), strict=True))

        def run(group: list) -> list[tuple[torch.Tensor, torch.Tensor]]:
            results = []
            for net, xs, ys in group:
                with autocast(x.device, amp):
                    log_probs = net(xs)  # (b, 10)
                loss = training_loss(log_probs.float(), ys, cfg.label_smoothing) * (
                    len(ys) / len(y)
                )
                loss.backward()
                results.append((loss.detach(), (log_probs.argmax(1) == ys).sum()))
            return results

        # Worker i runs ghost batches i, i + workers, ...; this thread runs the first group.
        groups = [jobs[i :: self.workers] for i in range(self.workers)]
        saved = torch.get_num_threads()
        torch.set_num_threads(self.threads_each)
        try:
            others = [self.pool.submit(run, g) for g in groups[1:]] if self.pool else []
            results = run(groups[0]) + [r for f in others for r in f.result()]
        finally:
            torch.set_num_threads(saved)
        with torch.no_grad():
            for replica in self.replicas:
                torch._foreach_add_(
                    [p.grad for p in model.parameters()], [p.grad for p in replica.parameters()]
                )
            self.merge_statistics(start)
        return sum(loss for loss, _ in results), sum(correct for _, correct in results)

    def merge_statistics(self, start: list[list[torch.Tensor]]) -> None:
        """Each ghost batch moved its copy of the running statistics from ``start`` to
        (1 - m) start + m its own; in turn, as the loop does, they end at what this folds."""
        for i, (bn, *others) in enumerate(zip(*self.norms, strict=True)):
            mean0, var0, count0 = start[i]
            m = bn.momentum
            for other in others:
                for name, first in (("running_mean", mean0), ("running_var", var0)):
                    stat = getattr(bn, name)
                    stat.mul_(1 - m).add_(getattr(other, name)).sub_(first, alpha=1 - m)
            bn.num_batches_tracked.copy_(count0 + len(self.norms))
