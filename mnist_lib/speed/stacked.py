"""Several runs of one recipe trained as one network, and the whole training step as one CUDA graph.

The runs differ only in their seed. `mnist_lib.speed.widen` puts their networks side by side as
one network of grouped convolutions, one group per run: each run keeps its own weights,
initialisation, batch order, augmentation draws and BatchNorm statistics, as if it were trained
alone (only dropout masks, which the recipes do not use, come from one generator for all), and the
GPU runs every layer once for all of them.

One training step (gather the batch, augment, forward, loss, backward, SGD, weight average) is
a function of tensors that stay where they are: the epoch's batch order, augmentation matrices,
learning rates and momenta are tables on the device that the step indexes with a step counter
on the device. On a GPU that step is recorded once as a CUDA graph and replayed: one launch per
step and no waiting for the GPU inside an epoch. The test pass is recorded and replayed the same
way. On a CPU the same functions simply run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import affine, random_thetas
from ..config import TrainConfig
from ..data import DeviceData
from ..device import autocast
from ..ema import Ema
from ..train import steps_per_epoch, training_loss
from .widen import copy_rows, widen

# Eager steps on a side stream before a step is recorded, as PyTorch's CUDA graph docs advise:
# the first calls set up cuDNN and the allocator, which a recording must not contain.
WARM_UP_STEPS = 3


@dataclass
class Member:
    """One of the runs: its model, weight average (or None), optimizer, schedule and the
    generator of its batch order and augmentation draws."""

    model: nn.Module
    ema: Ema | None
    optimizer: torch.optim.SGD
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator


class StackedTrainer:
    """Trains ``members`` (same config ``cfg`` but the seed) together on ``data``'s device.

    `train_epoch` and `evaluate` work on the widened networks (`mnist_lib.speed.widen`); `store`
    copies each run's part back into its model, weight average and optimizer, for its checkpoint.
    Build it after loading a checkpoint: it starts from the members' current state.
    """

    def __init__(
        self,
        members: list[Member],
        data: DeviceData,
        cfg: TrainConfig,
        amp: torch.dtype | None,
        shards: int,
        graphs: bool | None = None,
        layout: torch.memory_format = torch.channels_last,
    ) -> None:
        self.members, self.data, self.cfg, self.amp = members, data, cfg, amp
        self.device = data.train_x.device
        self.graphs = self.device.type == "cuda" if graphs is None else graphs
        self.runs, n = len(members), len(data.train_y)
        self.batch = min(cfg.batch_size, n)
        self.steps = steps_per_epoch(n, self.batch)
        self.shards = shards
        self.augment = cfg.rotate > 0 or cfg.shift > 0
        # Channels-last by default on every device: on the H200 a plain graphed step ran 2.4x
        # faster so in bf16 (results/bench/gpu-h200/vmap-profile.txt); the CPU's loop uses it too.
        self.layout = layout
        self.wide = widen([m.model for m in members]).to(memory_format=self.layout)
        self.avg = (
            widen([m.ema.module for m in members])
            .to(memory_format=self.layout)
            .requires_grad_(False)
            if cfg.ema
            else self.wide
        )
        self.params = list(self.wide.parameters())
        self.buffers = list(self.wide.buffers())
        self.avg_params, self.avg_buffers = list(self.avg.parameters()), list(self.avg.buffers())
        self.momenta = self.stacked_momenta()
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
        """SGD's momentum buffers, side by side as the weights are (zeros before the first step:
        SGD's first buffer is the gradient itself, which momentum x 0 + gradient also gives)."""
        momenta = [torch.zeros_like(p) for p in self.params]
        for r, m in enumerate(self.members):
            for buf, p in zip(momenta, m.model.parameters(), strict=True):
                saved = m.optimizer.state.get(p, {}).get("momentum_buffer")
                if saved is not None:
                    copy_rows(buf, self.runs)[r].copy_(saved)
        return momenta

    # -- the network of all runs -------------------------------------------------------------

    def side_by_side(self, x: torch.Tensor) -> torch.Tensor:
        """Images (runs, B, 1, H, W), one batch per run, as the widened network's input
        (B, runs, H, W): each run's image is a channel."""
        return x.squeeze(2).transpose(0, 1).contiguous(memory_format=self.layout)

    def log_probs(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Every run's log-probabilities (B, 10, runs) of input (B, runs, H, W), in fp32."""
        with autocast(self.device, self.amp):
            out = model(x)
        if out.shape != (len(x), 10, self.runs):
            raise ValueError(f"{self.cfg.model} does not keep the runs apart: output {out.shape}")
        return out.float()

    # -- one step ------------------------------------------------------------------------------

    def train_step(self) -> None:
        """The step at ``step_index`` of the epoch's tables, for every run; no host sync."""
        s, b, i = self.runs, self.batch, self.step_index
        idx = self.order.index_select(1, i).squeeze(1)  # (runs, B)
        x, y = self.data.train_x[idx], self.data.train_y[idx].T  # (runs, B, 1, 28, 28), (B, runs)
        if self.augment:
            thetas = self.thetas.index_select(1, i).squeeze(1)  # (runs, B, 2, 3)
            x = affine(x.flatten(0, 1), thetas.flatten(0, 1)).unflatten(0, (s, b))
        x = self.side_by_side(x)
        lr, momentum, weight = self.rates.index_select(0, i).squeeze(0).unbind()
        self.wide.train()
        loss = torch.zeros(s, device=self.device)
        correct = torch.zeros(s, dtype=torch.long, device=self.device)
        first_shard_buffers: list[torch.Tensor] = []
        for k, (xs, ys) in enumerate(
            zip(x.tensor_split(self.shards), y.tensor_split(self.shards), strict=True)
        ):
            if k == 1:  # BatchNorm's running statistics come from the first shard (ShardedStep)
                first_shard_buffers = [t.clone() for t in self.buffers]
            log_probs = self.log_probs(self.wide, xs)  # (b, 10, runs)
            per_image = training_loss(log_probs, ys, self.cfg.label_smoothing, reduction="none")
            loss = loss + per_image.mean(0) * (len(ys) / b)  # each run's mean, by its share
            correct = correct + (log_probs.argmax(1) == ys).sum(0)
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
                    rates[k, 2] = ema.next_weight()
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
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), autocast_cache_off(self.device, self.amp):
            self.train_step()  # recorded, not run: the counter stays at the warm-up's end
        self.train_graph = graph
        for _ in range(self.steps - warm):
            graph.replay()

    # -- the test pass -------------------------------------------------------------------------

    @torch.no_grad()
    def eval_pass(self) -> None:
        """Loss sum and correct predictions of every run's evaluated weights on the eval set."""
        self.avg.eval()
        self.eval_loss.zero_()
        self.eval_correct.zero_()
        x_all, y_all, size = self.data.eval_x, self.data.eval_y, self.cfg.eval_batch_size
        for start in range(0, len(y_all), size):
            x, y = x_all[start : start + size], y_all[start : start + size]
            x = self.side_by_side(x.expand(self.runs, *x.shape))  # the same images for every run
            log_probs = self.log_probs(self.avg, x)  # (b, 10, runs)
            y = y[:, None].expand(len(y), self.runs)
            self.eval_loss.add_(F.nll_loss(log_probs, y, reduction="none").sum(0))
            self.eval_correct.add_((log_probs.argmax(1) == y).sum(0))

    def evaluate(self) -> list[tuple[float, float]]:
        """Mean loss and accuracy (%) of every run on the eval set, as `train.evaluate`."""
        if not self.graphs:
            self.eval_pass()
        elif self.eval_graph is None:
            self.eval_pass()  # the first pass warms up; the second is recorded
            if self.evaluated:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph), autocast_cache_off(self.device, self.amp):
                    self.eval_pass()
                self.eval_graph = graph
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
        """Copy each run's part of the widened networks into its model, average and optimizer."""
        for r, m in enumerate(self.members):
            mine = [copy_rows(t, self.runs)[r] for t in (*self.params, *self.buffers)]
            torch._foreach_copy_([*m.model.parameters(), *m.model.buffers()], mine)
            for p, buf in zip(m.model.parameters(), self.momenta, strict=True):
                m.optimizer.state[p]["momentum_buffer"] = copy_rows(buf, self.runs)[r].clone()
            if m.ema is not None:
                average = m.ema.module
                mine = [copy_rows(t, self.runs)[r] for t in (*self.avg_params, *self.avg_buffers)]
                torch._foreach_copy_([*average.parameters(), *average.buffers()], mine)


def autocast_cache_off(device: torch.device, amp: torch.dtype | None) -> torch.autocast:
    """Autocast without its weight cache, which a CUDA graph must not hold across replays."""
    return torch.autocast(
        device.type, dtype=amp or torch.float32, enabled=amp is not None, cache_enabled=False
    )
