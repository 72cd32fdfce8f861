"""Data parallelism inside one process: each batch is split into shards, one per model replica.

On a CPU the shards' forward and backward passes are shared out among worker threads, one per
core (up to one per shard), each with its share of the intra-op threads. On a GPU they run one
after the other, each replica's pass recorded once as a CUDA graph and replayed.

Either way it is one SGD step on the whole batch: each shard's loss is weighted by its share of
the batch and the gradients are summed into the model. Only BatchNorm sees less: each shard is
normalised with its own statistics (a "ghost batch"), and the model's running statistics come
from the first shard, as with DistributedDataParallel.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from ..augment import affine
from ..device import autocast
from ..train import training_loss


def forward_backward(
    replica: nn.Module,
    replica_params: list[torch.Tensor],
    weights: list[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    thetas: torch.Tensor | None,
    share: float,
    amp: torch.dtype | None,
    smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy the current ``weights`` into ``replica``'s parameters, augment its shard by ``thetas``
    (if given), backpropagate ``share`` x its mean loss, and return that weighted loss and the
    number of correct predictions."""
    with torch.no_grad():
        torch._foreach_copy_(replica_params, weights)
    replica.zero_grad(set_to_none=True)
    if thetas is not None:
        x = affine(x, thetas)
    with autocast(x.device, amp):
        log_probs = replica(x)  # (b, 10)
    loss = training_loss(log_probs.float(), y, smoothing) * share
    loss.backward()
    return loss.detach(), (log_probs.argmax(1) == y).sum()


def worker_threads(device: torch.device, shards: int) -> int:
    """Threads that run shards at the same time: on a CPU one per intra-op thread, at most one
    per shard; one on a GPU."""
    return max(1, min(shards, torch.get_num_threads())) if device.type == "cpu" else 1


def run_in_turn(jobs: list[tuple]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [forward_backward(*job) for job in jobs]


class ShardedStep:
    """A `Step` (see `mnist_lib.train.PlainStep`) split over ``shards`` replicas of ``model``.

    The replicas are copies of ``model`` that take its weights before every step; ``model`` itself
    only receives the summed gradients and the first replica's BatchNorm statistics. Build it
    once per run and enter it around each epoch: on a CPU entering starts the worker threads and,
    while it is open, gives each of them (the caller's thread is one) ``threads // workers``
    intra-op threads. On a GPU each replica's forward and backward pass is recorded as a CUDA
    graph at the first step and replayed at every later one: a few launches instead of hundreds.
    """

    def __init__(
        self, model: nn.Module, shards: int, amp: torch.dtype | None, smoothing: float = 0.0
    ) -> None:
        self.model, self.amp, self.smoothing = model, amp, smoothing
        self.replicas = [copy.deepcopy(model) for _ in range(shards)]
        # The tensors, found once: walking the modules every step costs more than some of the work.
        self.weights = list(model.parameters())
        self.replica_params = [list(r.parameters()) for r in self.replicas]
        self.buffers = list(model.buffers())  # BatchNorm's running statistics, from the first shard
        self.first_buffers = list(self.replicas[0].buffers())
        self.device = next(model.parameters()).device
        self.workers = worker_threads(self.device, shards)
        self.threads_each = torch.get_num_threads() // self.workers
        self.pool: ThreadPoolExecutor | None = None
        self.graphed = False

    def __enter__(self) -> ShardedStep:
        if self.workers > 1:
            self.saved_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads_each)
            self.pool = ThreadPoolExecutor(
                self.workers - 1, initializer=torch.set_num_threads, initargs=(self.threads_each,)
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
            torch.set_num_threads(self.saved_threads)

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, thetas: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's mean loss and number of correct predictions; the gradient in ``model``.

        ``thetas`` (B, 2, 3), if given, are the images' augmentation (`mnist_lib.augment.affine`),
        applied by each shard to its own images, so that it too runs in parallel.
        """
        n = len(self.replicas)
        xs, ys = x.tensor_split(n), y.tensor_split(n)
        ts = thetas.tensor_split(n) if thetas is not None else [None] * n
        if self.device.type == "cuda" and not self.graphed:
            self.record_cuda_graphs(xs)
        shards = zip(self.replicas, self.replica_params, xs, ys, ts, strict=True)
        # Every replica takes self.weights: the model's weights as the optimizer left them.
        jobs = [
            (r, params, self.weights, xi, yi, ti, len(yi) / len(y), self.amp, self.smoothing)
            for r, params, xi, yi, ti in shards
        ]
        # Worker i runs shards i, i + workers, ...; outside a `with` block all run in this thread.
        groups = [jobs[i :: self.workers] for i in range(self.workers)] if self.pool else [jobs]
        others = [self.pool.submit(run_in_turn, g) for g in groups[1:]] if self.pool else []
        results = run_in_turn(groups[0]) + [r for f in others for r in f.result()]
        with torch.no_grad():
            grads = [p.grad for p in self.replica_params[0]]
            for params in self.replica_params[1:]:
                grads = torch._foreach_add(grads, [p.grad for p in params])
            for weight, grad in zip(self.weights, grads, strict=True):
                weight.grad = grad
            if self.buffers:
                torch._foreach_copy_(self.buffers, self.first_buffers)
        return sum(loss for loss, _ in results), sum(correct for _, correct in results)

    def record_cuda_graphs(self, shard_inputs: tuple[torch.Tensor, ...]) -> None:
        """Replace each replica's training forward (and its backward) by a CUDA graph of it."""
        # The graphs' warm-up runs on a side stream, so autograd would warn that the gradient
        # accumulation syncs with it.
        with quiet_stream_mismatch():
            for replica, sample in zip(self.replicas, shard_inputs, strict=True):
                saved = [b.clone() for b in replica.buffers()]  # warm-up passes are not training
                with torch.autocast(
                    "cuda",
                    dtype=self.amp or torch.float32,
                    enabled=self.amp is not None,
                    cache_enabled=False,
                ):
                    torch.cuda.make_graphed_callables(replica, (sample,))
                with torch.no_grad():
                    torch._foreach_copy_(list(replica.buffers()), saved)
                replica.zero_grad(set_to_none=True)
        self.graphed = True


@contextlib.contextmanager
def quiet_stream_mismatch() -> Iterator[None]:
    """Without autograd's warning that a weight's gradient arrives from another stream than the
    one it was made on (a warm-up's side stream, a shard's own stream): true, harmless (autograd
    syncs them), and noise in a notebook's output; back on (its default) afterwards."""
    warn = getattr(torch.autograd.graph, "set_warn_on_accumulate_grad_stream_mismatch", None)
    if warn is not None:
        warn(False)
    try:
        yield
    finally:
        if warn is not None:
            warn(True)
