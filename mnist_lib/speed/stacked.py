"""Several runs of one recipe trained in one step, and the whole training step as one CUDA graph.

The runs differ only in their seed; each keeps its own network, weight average, batch order,
augmentation draws and BatchNorm statistics, as if it were trained alone (only dropout masks,
which the recipes do not use, come from one generator for all). On a GPU every run's BatchNorm
shard is computed on a CUDA stream of its own: the kernels of a network this small leave most
of the GPU idle, and the streams fill it side by side.

One training step (gather the batch, augment, forward, loss, backward, SGD, weight average) is
a function of tensors that stay where they are: the epoch's batch order, augmentation matrices,
learning rates and momenta are tables on the device that the step indexes with a step counter
on the device. On a GPU that step is recorded once as a CUDA graph and replayed: one launch per
step and no waiting for the GPU inside an epoch. The test pass is recorded and replayed the same
way. On a CPU the same functions simply run, one shard after the other.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

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
from .shards import quiet_stream_mismatch

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

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are scored and saved: the weight average when there is one."""
        return self.ema.module if self.ema is not None else self.model


class StackedTrainer:
    """Trains ``members`` (same config ``cfg`` but the seed) together on ``data``'s device.

    It trains the members' own models and weight averages, in place (in ``layout``); `store`
    copies SGD's momentum into each optimizer, for its checkpoint. Build it after loading a
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
        layout: torch.memory_format = torch.channels_last,
    ) -> None:
        self.members, self.data, self.cfg, self.amp = members, data, cfg, amp
        self.device = data.train_x.device
        self.graphs = self.device.type == "cuda" if graphs is None else graphs
        self.runs, n = len(members), len(data.train_y)
        self.batch = min(cfg.batch_size, n)
        self.steps = steps_per_epoch(n, self.batch)
        self.shards = shards
        self.augment = cfg.augments
        # Channels-last by default on every device: on the H200 a plain graphed step ran 2.4x
        # faster so in bf16 (results/bench/gpu-h200/vmap-profile.txt); the CPU's loop uses it too.
        for m in members:
            m.model.to(memory_format=layout)
            if m.ema is not None:
                m.ema.module.to(memory_format=layout)
        self.layout = layout
        self.models = [m.model for m in members]
        self.evaluated_models = [m.eval_model for m in members]
        self.params = [p for model in self.models for p in model.parameters()]
        # Shards after the first run through their network with scratch BatchNorm statistics:
        # the run's statistics come from its first shard, as in `ShardedStep`.
        self.weights = [dict(model.named_parameters()) for model in self.models]
        self.scratch = [
            [{k: b.clone() for k, b in model.named_buffers()} for _ in range(shards - 1)]
            for model in self.models
        ]
        self.momenta = self.saved_momenta()
        # The weight averages' tensors and what they follow, gathered once for `average`.
        emas = [m.ema for m in members if m.ema is not None]
        self.averages = [a for ema in emas for a in ema.floats[0]]
        self.averaged = [t.detach() for ema in emas for t in ema.floats[1]]
        self.counters = (
            [a for ema in emas for a in ema.counters[0]],
            [t for ema in emas for t in ema.counters[1]],
        )
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
        # One CUDA stream per run and shard (per run in the test pass); none on a CPU.
        cuda = self.device.type == "cuda"
        self.streams = [torch.cuda.Stream(dev) for _ in range(s * shards)] if cuda else []
        self.train_graph: torch.cuda.CUDAGraph | None = None
        self.eval_graph: torch.cuda.CUDAGraph | None = None
        self.evaluated = False

    def saved_momenta(self) -> list[torch.Tensor]:
        """SGD's momentum buffers as the optimizers hold them (zeros before the first step: SGD's
        first buffer is the gradient itself, which momentum x 0 + gradient also gives)."""
        momenta = []
        for m in self.members:
            for p in m.model.parameters():
                saved = m.optimizer.state.get(p, {}).get("momentum_buffer")
                momentum = torch.zeros_like(p)  # in the weight's layout, for the fused update
                momenta.append(momentum.copy_(saved) if saved is not None else momentum)
        return momenta

    @contextlib.contextmanager
    def side_by_side(self, jobs: int) -> Iterator[list[contextlib.AbstractContextManager]]:
        """``jobs`` contexts to run one job each in, on streams of their own that start after
        the work queued so far and that this stream waits for at the end (on a GPU), or in turn
        (on a CPU)."""
        if not self.streams:
            yield [contextlib.nullcontext() for _ in range(jobs)]
            return
        here = torch.cuda.current_stream(self.device)
        streams = self.streams[:jobs]
        for stream in streams:
            stream.wait_stream(here)
        try:
            yield [torch.cuda.stream(stream) for stream in streams]
        finally:  # joined back even after an error, which a recording needs to end cleanly
            for stream in streams:
                here.wait_stream(stream)

    # -- one step ------------------------------------------------------------------------------

    def shard_pass(self, run: int, shard: int, x: torch.Tensor, y: torch.Tensor) -> tuple:
        """One shard of one run's batch: its share of the run's mean loss and its correct
        predictions."""
        model = self.models[run]
        with autocast(self.device, self.amp):
            if shard == 0:
                out = model(x)
            else:
                state = {**self.weights[run], **self.scratch[run][shard - 1]}
                out = functional_call(model, state, (x,))
        loss = training_loss(out.float(), y, self.cfg.label_smoothing)
        return loss * (len(y) / self.batch), (out.argmax(1) == y).sum()

    def train_step(self) -> None:
        """The step at ``step_index`` of the epoch's tables, for every run; no host sync."""
        s, i = self.runs, self.step_index
        idx = self.order.index_select(1, i).squeeze(1)  # (runs, B)
        thetas = self.thetas.index_select(1, i).squeeze(1)  # (runs, B, 2, 3)
        lr, momentum, weight = self.rates.index_select(0, i).squeeze(0).unbind()
        jobs = [(run, k) for run in range(s) for k in range(self.shards)]
        idx_shards = [t.tensor_split(self.shards) for t in idx]
        theta_shards = [t.tensor_split(self.shards) for t in thetas]
        results = []
        for model in self.models:
            model.train()
        with self.side_by_side(len(jobs)) as places:
            for (run, k), place in zip(jobs, places, strict=True):
                with place:
                    shard = idx_shards[run][k]
                    x, y = self.data.train_x[shard], self.data.train_y[shard]
                    if self.augment:
                        x = affine(x, theta_shards[run][k])
                    x = x.contiguous(memory_format=self.layout)
                    results.append(self.shard_pass(run, k, x, y))
        loss = torch.stack([r[0] for r in results]).view(s, self.shards).sum(1)
        correct = torch.stack([r[1] for r in results]).view(s, self.shards).sum(1)
        grads = torch.autograd.grad(loss.sum(), self.params)
        with torch.no_grad():
            self.sgd(list(grads), lr, momentum)
            if self.cfg.ema:
                self.average(weight)
            self.loss_sum.add_(loss.detach() * self.batch)
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
        """`Ema.update` of every run with this step's averaging weight 1 - d (1 at the first
        update)."""
        moves = torch._foreach_mul(torch._foreach_sub(self.averaged, self.averages), weight)
        torch._foreach_add_(self.averages, moves)
        if self.counters[0]:  # BatchNorm's batch counters: copied, not averaged
            torch._foreach_copy_(*self.counters)

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
            if self.augment:  # the same numbers as a draw per step: one draw for all steps,
                # unless a zoom, drawn after each step's rotations and shifts, comes in between
                c = self.cfg
                per_draw = b if c.scale else self.steps * b
                draws = [
                    random_thetas(per_draw, c.rotate, c.shift, m.generator, max_scale=c.scale)
                    for _ in range(self.steps * b // per_draw)
                ]
                thetas.append(torch.cat(draws).view(self.steps, b, 2, 3))
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
        with quiet_stream_mismatch():
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
        with torch.cuda.graph(graph), autocast_cache_off(self.device):
            self.train_step()  # recorded, not run: the counter stays at the warm-up's end
        self.train_graph = graph
        for _ in range(self.steps - warm):
            graph.replay()

    # -- the test pass -------------------------------------------------------------------------

    @torch.no_grad()
    def eval_pass(self) -> None:
        """Loss sum and correct predictions of every run's evaluated weights on the eval set."""
        x_all, y_all, size = self.data.eval_x, self.data.eval_y, self.cfg.eval_batch_size
        with self.side_by_side(self.runs) as places:
            for run, (model, place) in enumerate(zip(self.evaluated_models, places, strict=True)):
                with place:
                    model.eval()
                    loss, correct = torch.zeros((), device=self.device), 0
                    for start in range(0, len(y_all), size):
                        x = x_all[start : start + size].contiguous(memory_format=self.layout)
                        y = y_all[start : start + size]
                        with autocast(self.device, self.amp):
                            log_probs = model(x).float()
                        loss = loss + F.nll_loss(log_probs, y, reduction="sum")
                        correct = correct + (log_probs.argmax(1) == y).sum()
                    self.eval_loss[run].copy_(loss)
                    self.eval_correct[run].copy_(correct)

    def evaluate(self) -> list[tuple[float, float]]:
        """Mean loss and accuracy (%) of every run on the eval set, as `train.evaluate`."""
        if not self.graphs:
            self.eval_pass()
        elif self.eval_graph is None:
            self.eval_pass()  # the first pass warms up; the second is recorded
            if self.evaluated:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph), autocast_cache_off(self.device):
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
        """Copy SGD's momentum into each run's optimizer (its model and average are trained in
        place)."""
        momenta = iter(self.momenta)
        for m in self.members:
            for p in m.model.parameters():
                m.optimizer.state[p]["momentum_buffer"] = next(momenta).clone()


def autocast_cache_off(device: torch.device) -> torch.autocast:
    """While recording: autocast's weight cache off, which a CUDA graph must not hold across
    replays (the passes' own autocast inherits it), and autocast itself off around them, as in
    the eager steps: augmentation and losses in fp32."""
    return torch.autocast(device.type, enabled=False, cache_enabled=False)
