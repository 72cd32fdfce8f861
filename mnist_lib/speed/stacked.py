"""Several runs of one recipe trained as one, and the whole training step as one CUDA graph.

The runs differ only in their seed. Their weights, BatchNorm statistics, momentum buffers and
weight averages are stacked along a new first dimension (one row per run), and `torch.func.vmap`
runs the model once over all rows: each run keeps its own weights, initialisation, batch order,
augmentation draws and BatchNorm statistics, as if it were trained alone. (vmap turns a
convolution with stacked weights into one grouped convolution, one group per run.)

One training step (gather the batch, augment, forward, loss, backward, SGD, weight average) is
a function of tensors that stay where they are: the epoch's batch order, augmentation matrices,
learning rates and momenta are tables on the device that the step indexes with a step counter
on the device. On a GPU that step is recorded once as a CUDA graph and replayed: one launch per
step and no waiting for the GPU inside an epoch. The test pass is recorded and replayed the same
way. On a CPU the same functions simply run.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..augment import affine, random_thetas
from ..config import TrainConfig
from ..data import DeviceData
from ..device import autocast
from ..ema import Ema
from ..train import steps_per_epoch, training_loss

WARM_UP_STEPS = 3  # eager steps on a side stream before a CUDA graph is recorded (see its docs)


@dataclass
class Member:
    """One of the runs: its model, weight average (or None), optimizer, schedule and the
    generator of its batch order and augmentation draws."""

    model: nn.Module
    ema: Ema | None
    optimizer: torch.optim.SGD
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([t.detach().contiguous() for t in tensors])


class StackedTrainer:
    """Trains ``members`` (same config ``cfg`` but the seed) together on ``data``'s device.

    `train_epoch` and `evaluate` work on the stacked tensors; `store` copies them back into each
    member's model, weight average and optimizer, for its checkpoint. Build it after loading a
    checkpoint: it starts from the members' current state.
    """

    def __init__(
        self,
        members: list[Member],
        data: DeviceData,
        cfg: TrainConfig,
        amp: torch.dtype | None,
        shards: int,
        graphs: bool | None = None,
    ) -> None:
        self.members, self.data, self.cfg, self.amp = members, data, cfg, amp
        self.device = data.train_x.device
        self.graphs = self.device.type == "cuda" if graphs is None else graphs
        self.runs, n = len(members), len(data.train_y)
        self.batch = min(cfg.batch_size, n)
        self.steps = steps_per_epoch(n, self.batch)
        self.shards = shards
        self.augment = cfg.rotate > 0 or cfg.shift > 0
        models = [m.model for m in members]
        self.base = batchable(copy.deepcopy(models[0]).to("meta"))  # the weights are below
        self.param_names = [k for k, _ in models[0].named_parameters()]
        self.buffer_names = [k for k, _ in models[0].named_buffers()]
        self.params = [
            stack([dict(m.named_parameters())[k] for m in models]).requires_grad_()
            for k in self.param_names
        ]
        self.buffers = [
            stack([dict(m.named_buffers())[k] for m in models]) for k in self.buffer_names
        ]
        self.momenta = self.stacked_momenta()
        if cfg.ema:
            averages = [m.ema.module for m in members]
            self.avg_params = [
                stack([dict(a.named_parameters())[k] for a in averages]) for k in self.param_names
            ]
            self.avg_buffers = [
                stack([dict(a.named_buffers())[k] for a in averages]) for k in self.buffer_names
            ]
        else:
            self.avg_params, self.avg_buffers = self.params, self.buffers
        dev, s, b = self.device, self.runs, self.batch
        # The epoch's tables, filled by `prepare_epoch`, and the step counter that indexes them.
        self.order = torch.zeros(s, self.steps, b, dtype=torch.long, device=dev)
        self.thetas = torch.zeros(s, self.steps, b, 2, 3, device=dev)
        self.rates = torch.zeros(self.steps, 3, device=dev)  # lr, momentum, averaging weight
        self.step_index = torch.zeros(1, dtype=torch.long, device=dev)
        # Per run: the epoch's loss sum, correct predictions, first non-finite step (-1 if none).
        self.loss_sum = torch.zeros(s, device=dev)
        self.correct = torch.zeros(s, dtype=torch.long, device=dev)
        self.first_bad = torch.zeros(s, dtype=torch.long, device=dev)
        self.eval_loss = torch.zeros(s, device=dev)
        self.eval_correct = torch.zeros(s, dtype=torch.long, device=dev)
        self.train_graph: torch.cuda.CUDAGraph | None = None
        self.eval_graph: torch.cuda.CUDAGraph | None = None
        self.evaluated = False

    def stacked_momenta(self) -> list[torch.Tensor]:
        """SGD's momentum buffers, stacked (zeros before the first step: SGD's first buffer is
        the gradient itself, which momentum x 0 + gradient also gives)."""

        def buffer(m: Member, p: torch.Tensor) -> torch.Tensor:
            saved = m.optimizer.state.get(p, {}).get("momentum_buffer")
            return torch.zeros_like(p) if saved is None else saved

        per_member = [list(m.model.parameters()) for m in self.members]
        return [
            stack(
                [buffer(m, params[i]) for m, params in zip(self.members, per_member, strict=True)]
            )
            for i in range(len(self.param_names))
        ]

    # -- the model over all runs -------------------------------------------------------------

    def forward(
        self, params: list[torch.Tensor], buffers: list[torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        """Log-probabilities (runs, B, 10) of images ``x``: (runs, B, 1, 28, 28), or (B, 1, 28,
        28) shared by all runs."""

        def one(p: tuple, b: tuple, xi: torch.Tensor) -> torch.Tensor:
            names = [*self.param_names, *self.buffer_names]
            return functional_call(self.base, dict(zip(names, (*p, *b), strict=True)), (xi,))

        in_x = 0 if x.dim() == 5 else None
        return torch.vmap(one, in_dims=(0, 0, in_x), randomness="different")(
            tuple(params), tuple(buffers), x
        )

    # -- one step ------------------------------------------------------------------------------

    def train_step(self) -> None:
        """The step at ``step_index`` of the epoch's tables, for every run; no host sync."""
        s, b, i = self.runs, self.batch, self.step_index
        idx = self.order.index_select(1, i).squeeze(1)  # (runs, B)
        x, y = self.data.train_x[idx], self.data.train_y[idx]  # (runs, B, 1, 28, 28), (runs, B)
        if self.augment:
            thetas = self.thetas.index_select(1, i).squeeze(1)  # (runs, B, 2, 3)
            x = affine(x.flatten(0, 1), thetas.flatten(0, 1)).unflatten(0, (s, b))
        lr, momentum, weight = self.rates.index_select(0, i).squeeze(0).unbind()
        self.base.train()
        loss = torch.zeros(s, device=self.device)
        correct = torch.zeros(s, dtype=torch.long, device=self.device)
        first_shard_buffers: list[torch.Tensor] = []
        shards = zip(x.tensor_split(self.shards, 1), y.tensor_split(self.shards, 1), strict=True)
        for k, (xs, ys) in enumerate(shards):
            if k == 1:  # BatchNorm's running statistics come from the first shard (ShardedStep)
                first_shard_buffers = [t.clone() for t in self.buffers]
            with autocast(self.device, self.amp):
                log_probs = self.forward(self.params, self.buffers, xs).float()  # (runs, b, 10)
            per_run = torch.vmap(partial(training_loss, smoothing=self.cfg.label_smoothing))
            loss = loss + per_run(log_probs, ys) * (ys.shape[1] / b)
            correct = correct + (log_probs.argmax(-1) == ys).sum(1)
        grads = torch.autograd.grad(loss.sum(), self.params)
        with torch.no_grad():
            if first_shard_buffers:
                torch._foreach_copy_(self.buffers, first_shard_buffers)
            self.sgd(list(grads), lr, momentum)
            if self.cfg.ema:
                self.average(weight)
            self.loss_sum.add_(loss.detach() * b)
            self.correct.add_(correct)
            bad = (self.first_bad < 0) & ~torch.isfinite(loss.detach())
            self.first_bad.copy_(torch.where(bad, i, self.first_bad))
            self.step_index.add_(1)

    def sgd(self, grads: list[torch.Tensor], lr: torch.Tensor, momentum: torch.Tensor) -> None:
        """`torch.optim.SGD`'s step (Nesterov when momentum > 0) with the learning rate and
        momentum as tensors, so that a recorded graph reads this step's values."""
        if self.cfg.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.cfg.weight_decay)
        torch._foreach_mul_(self.momenta, momentum)
        torch._foreach_add_(self.momenta, grads)
        if self.cfg.momentum > 0:  # Nesterov: step along gradient + momentum x buffer
            update = torch._foreach_add(grads, torch._foreach_mul(self.momenta, momentum))
        else:
            update = self.momenta
        torch._foreach_sub_(self.params, torch._foreach_mul(update, lr))

    def average(self, weight: torch.Tensor) -> None:
        """`Ema.update` with this step's averaging weight 1 - d (1 at the first update)."""
        floats = [t for t in self.buffers if t.is_floating_point()]
        averages = [t for t in self.avg_buffers if t.is_floating_point()]
        models, avgs = [*self.params, *floats], [*self.avg_params, *averages]
        step = torch._foreach_sub([t.detach() for t in models], avgs)
        torch._foreach_add_(avgs, torch._foreach_mul(step, weight))
        counters = [t for t in self.buffers if not t.is_floating_point()]  # copied, not averaged
        if counters:
            avg_counters = [t for t in self.avg_buffers if not t.is_floating_point()]
            torch._foreach_copy_(avg_counters, counters)

    # -- one epoch -----------------------------------------------------------------------------

    def prepare_epoch(self) -> None:
        """Draw the epoch's batch order and augmentation per run, from its own generator and in
        the order `train_one_epoch` draws them; advance each run's schedule and average by the
        epoch's steps; copy the tables to the device."""
        n, b = len(self.data.train_y), self.batch
        orders, thetas = [], []
        for m in self.members:
            order = torch.randperm(n, generator=m.generator)[: self.steps * b]
            orders.append(order.view(self.steps, b))
            if self.augment:
                draws = [
                    random_thetas(b, self.cfg.rotate, self.cfg.shift, m.generator)
                    for _ in range(self.steps)
                ]
                thetas.append(torch.stack(draws))
        rates = torch.zeros(self.steps, 3, dtype=torch.float64)
        with warnings.catch_warnings():  # the schedule steps without optimizer.step(): expected
            warnings.simplefilter("ignore", UserWarning)
            for k in range(self.steps):
                group = self.members[0].optimizer.param_groups[0]
                rates[k, 0], rates[k, 1] = group["lr"], group.get("momentum", 0.0)
                ema = self.members[0].ema
                if ema is not None:
                    rates[k, 2] = (
                        1.0
                        if ema.updates == 0
                        else 1 - min(ema.decay, (1 + ema.updates) / (10 + ema.updates))
                    )
                for m in self.members:
                    m.scheduler.step()
                    if m.ema is not None:
                        m.ema.updates += 1
        self.order.copy_(torch.stack(orders))
        if self.augment:
            self.thetas.copy_(torch.stack(thetas))
        self.rates.copy_(rates)
        self.step_index.zero_()
        self.loss_sum.zero_()
        self.correct.zero_()
        self.first_bad.fill_(-1)

    def train_epoch(self) -> list[dict]:
        """One epoch for every run: what `train_one_epoch` returns, per run."""
        self.prepare_epoch()
        if not self.graphs:
            for _ in range(self.steps):
                self.train_step()
        elif self.train_graph is None:
            self.record_train_step()
        else:
            for _ in range(self.steps):
                self.train_graph.replay()
        seen = self.steps * self.batch
        loss, correct, bad = self.loss_sum.tolist(), self.correct.tolist(), self.first_bad.tolist()
        return [
            {"train_loss": lo / seen, "train_acc": 100.0 * c / seen, "first_bad_step": int(f)}
            for lo, c, f in zip(loss, correct, bad, strict=True)
        ]

    def record_train_step(self) -> None:
        """The first graphed epoch: warm up on a side stream, record the step, replay the rest.
        The warm-up steps are real steps of the epoch; recording runs nothing."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        warm = min(WARM_UP_STEPS, self.steps)
        with torch.cuda.stream(side):
            for _ in range(warm):
                self.train_step()
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.train_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.train_graph), autocast_cache_off(self.device, self.amp):
            self.train_step()
        self.step_index.fill_(warm)  # recording moved the counter but did not train
        for _ in range(self.steps - warm):
            self.train_graph.replay()

    # -- the test pass -------------------------------------------------------------------------

    @torch.no_grad()
    def eval_pass(self) -> None:
        """Loss sum and correct predictions of every run's evaluated weights on the eval set."""
        self.base.eval()
        self.eval_loss.zero_()
        self.eval_correct.zero_()
        x_all, y_all, size = self.data.eval_x, self.data.eval_y, self.cfg.eval_batch_size
        for start in range(0, len(y_all), size):
            x, y = x_all[start : start + size], y_all[start : start + size]
            with autocast(self.device, self.amp):
                log_probs = self.forward(self.avg_params, self.avg_buffers, x).float()
            nll = F.nll_loss(log_probs.flatten(0, 1), y.repeat(self.runs), reduction="none")
            self.eval_loss.add_(nll.view(self.runs, -1).sum(1))
            self.eval_correct.add_((log_probs.argmax(-1) == y).sum(1))

    def evaluate(self) -> list[tuple[float, float]]:
        """Mean loss and accuracy (%) of every run on the eval set, as `train.evaluate`."""
        if not self.graphs:
            self.eval_pass()
        elif self.eval_graph is None:
            self.eval_pass()  # the first pass warms up; the second is recorded
            if self.evaluated:
                self.eval_graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.eval_graph):
                    self.eval_pass()
            self.evaluated = True
        else:
            self.eval_graph.replay()
        n = len(self.data.eval_y)
        return [
            (lo / n, 100.0 * c / n)
            for lo, c in zip(self.eval_loss.tolist(), self.eval_correct.tolist(), strict=True)
        ]

    # -- back into the members -----------------------------------------------------------------

    @torch.no_grad()
    def store(self) -> None:
        """Copy the stacked state into each member's model, average and optimizer."""
        for r, m in enumerate(self.members):
            torch._foreach_copy_(list(m.model.parameters()), [p[r] for p in self.params])
            torch._foreach_copy_(list(m.model.buffers()), [b[r] for b in self.buffers])
            for p, buf in zip(m.model.parameters(), self.momenta, strict=True):
                m.optimizer.state[p]["momentum_buffer"] = buf[r].clone()
            if m.ema is not None:
                average = m.ema.module
                torch._foreach_copy_(list(average.parameters()), [p[r] for p in self.avg_params])
                torch._foreach_copy_(list(average.buffers()), [b[r] for b in self.avg_buffers])


class GlobalMean(nn.Module):
    """`nn.AdaptiveAvgPool2d(1)` as a plain mean, which vmap batches (it has no batching rule
    for adaptive pooling, falls back to a loop over the runs and warns)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((-2, -1), keepdim=True)


class FloatBatchNorm(nn.BatchNorm2d):
    """`nn.BatchNorm2d` on an fp32 copy of its input, returned in the input's dtype. Under vmap,
    CUDA's BatchNorm backward wants its running statistics in the input's dtype (bf16 under
    autocast); in fp32 it is what BatchNorm computes inside anyway."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def batchable(model: nn.Module) -> nn.Module:
    """``model`` with its global average poolings as `GlobalMean` and its BatchNorms as
    `FloatBatchNorm`: the same up to rounding, and both run under vmap."""
    for name, child in model.named_children():
        if isinstance(child, nn.AdaptiveAvgPool2d) and child.output_size in (1, (1, 1)):
            setattr(model, name, GlobalMean())
        elif type(child) is nn.BatchNorm2d:
            child.__class__ = FloatBatchNorm
        else:
            batchable(child)
    return model


def autocast_cache_off(device: torch.device, amp: torch.dtype | None):
    """Autocast without its weight cache, which a CUDA graph must not hold across replays."""
    return torch.autocast(
        device.type, dtype=amp or torch.float32, enabled=amp is not None, cache_enabled=False
    )
