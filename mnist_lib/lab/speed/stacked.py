"""Several runs of one recipe trained in one step, and the whole step as one CUDA graph.

The runs differ only in their seed; each keeps its own network, weight average, batch order,
augmentation draws and BatchNorm statistics, as if it were trained alone by `train_one_epoch`
(only dropout masks, which the recipes do not use, come from one generator for all).

One step (gather the batch, augment, forward, loss, backward, SGD, weight average) is a function
of tensors that stay where they are: the epoch's batch order, augmentation matrices, learning
rates and momenta are tables on the device, indexed by a step counter on the device, so that
`mnist_lib.lab.speed.graphed` can record it once as a CUDA graph. Here it simply runs.
"""

import contextlib
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm as BatchNorm

from ...augment import affine, random_thetas
from ...config import TrainConfig
from ...data import DeviceData
from ...device import autocast
from ...fit import Run
from ...train import steps_per_epoch, training_loss


class StackedTrainer:
    """Trains ``runs`` (one config but the seed) together on ``data``'s device, in place: their
    models and weight averages; `store` copies SGD's momentum into each optimizer for its
    checkpoint. Build it after loading a checkpoint: it starts from the runs' current state."""

    def __init__(
        self,
        runs: list[Run],
        data: DeviceData,
        cfg: TrainConfig,
        amp: torch.dtype | None,
        layout: torch.memory_format = torch.channels_last,
    ) -> None:
        self.members, self.data, self.cfg, self.amp = runs, data, cfg, amp
        self.device = dev = data.train_x.device
        self.runs, self.batch, self.shards = len(runs), cfg.batch_size, cfg.shards
        self.steps = steps_per_epoch(len(data.train_y), self.batch)
        for r in runs:  # channels-last everywhere: the faster layout for a graphed step too
            r.model.to(memory_format=layout)
            r.eval_model.to(memory_format=layout)
        self.layout = layout
        self.models = [r.model for r in runs]
        self.params = [p for model in self.models for p in model.parameters()]
        self.weights = [dict(model.named_parameters()) for model in self.models]
        # Ghost batches past the first run with BatchNorm statistics of their own (`scratch`),
        # which start each step from the run's and are folded into them after it, as in turn.
        self.scratch = [
            [{k: b.clone() for k, b in model.named_buffers()} for _ in range(self.shards - 1)]
            for model in self.models
        ]
        self.stats = [b for m in self.models for k, b in m.named_buffers() if "running" in k]
        self.start = [b.clone() for b in self.stats]
        self.scratch_stats = [
            [b for run in self.scratch for k, b in run[j].items() if "running" in k]
            for j in range(self.shards - 1)
        ]
        self.counts = [b for m in self.models for k, b in m.named_buffers() if "tracked" in k]
        norms = [m for model in self.models for m in model.modules() if isinstance(m, BatchNorm)]
        self.bn_momentum = norms[0].momentum if norms else 0.0
        self.momenta = self.saved_momenta()
        emas = [r.ema for r in runs if r.ema is not None]
        self.averages = [a for ema in emas for a in ema.floats[0]]
        self.averaged = [t.detach() for ema in emas for t in ema.floats[1]]
        self.counters = (
            [a for e in emas for a in e.counters[0]],
            [t for e in emas for t in e.counters[1]],
        )
        s, b = self.runs, self.batch
        # The epoch's tables, filled by `prepare_epoch`, and the step counter that indexes them.
        self.order = torch.zeros(s, self.steps, b, dtype=torch.long, device=dev)
        self.thetas = torch.zeros(s, self.steps, b, 2, 3, device=dev)
        self.rates = torch.zeros(self.steps, 3, device=dev)  # lr, momentum, averaging weight
        self.step_index = torch.zeros(1, dtype=torch.long, device=dev)
        self.loss_sum = torch.zeros(s, device=dev)
        self.correct = torch.zeros(s, dtype=torch.long, device=dev)
        self.eval_loss = torch.zeros(s, device=dev)
        self.eval_correct = torch.zeros(s, dtype=torch.long, device=dev)

    def saved_momenta(self) -> list[torch.Tensor]:
        """SGD's momentum buffers as the optimizers hold them (zeros before the first step: SGD's
        first buffer is the gradient itself, which momentum x 0 + gradient also gives)."""
        momenta = []
        for r in self.members:
            for p in r.model.parameters():
                saved = r.optimizer.state.get(p, {}).get("momentum_buffer")
                momentum = torch.zeros_like(p)  # in the weight's layout, for the fused update
                momenta.append(momentum.copy_(saved) if saved is not None else momentum)
        return momenta

    @contextlib.contextmanager
    def side_by_side(self, jobs: int) -> Iterator[list[contextlib.AbstractContextManager]]:
        """``jobs`` contexts to run one job each in: here in turn (on a GPU, on streams)."""
        yield [contextlib.nullcontext() for _ in range(jobs)]

    def shard_pass(self, run: int, shard: int, x: torch.Tensor, y: torch.Tensor) -> tuple:
        """One ghost batch of one run: its share of the run's mean loss, its correct count."""
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
        s, i, k = self.runs, self.step_index, self.shards
        idx = self.order.index_select(1, i).squeeze(1)  # (runs, B)
        thetas = self.thetas.index_select(1, i).squeeze(1)  # (runs, B, 2, 3)
        lr, momentum, weight = self.rates.index_select(0, i).squeeze(0).unbind()
        jobs = [(run, j) for run in range(s) for j in range(k)]
        idx_parts = [t.tensor_split(k) for t in idx]
        theta_parts = [t.tensor_split(k) for t in thetas]
        with torch.no_grad():
            if self.stats:
                torch._foreach_copy_(self.start, self.stats)
                for scratch in self.scratch_stats:
                    torch._foreach_copy_(scratch, self.stats)
        for model in self.models:
            model.train()
        results = []
        with self.side_by_side(len(jobs)) as places:
            for (run, j), place in zip(jobs, places, strict=True):
                with place:
                    part = idx_parts[run][j]
                    x, y = self.data.train_x[part], self.data.train_y[part]
                    if self.cfg.augments:
                        x = affine(x, theta_parts[run][j])
                    x = x.contiguous(memory_format=self.layout)
                    results.append(self.shard_pass(run, j, x, y))
        loss = torch.stack([r[0] for r in results]).view(s, k).sum(1)
        correct = torch.stack([r[1] for r in results]).view(s, k).sum(1)
        grads = torch.autograd.grad(loss.sum(), self.params)
        with torch.no_grad():
            self.sgd(list(grads), lr, momentum)
            self.merge_statistics()
            if self.cfg.ema:
                self.average(weight)
            self.loss_sum.add_(loss.detach() * self.batch)
            self.correct.add_(correct)
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

    def merge_statistics(self) -> None:
        """The running statistics as if each ghost batch had updated them in turn (see
        `mnist_lib.lab.speed.shards.ShardedStep.merge_statistics`)."""
        if not self.stats:
            return
        m = self.bn_momentum
        for scratch in self.scratch_stats:
            torch._foreach_mul_(self.stats, 1 - m)
            torch._foreach_add_(self.stats, scratch)
            torch._foreach_add_(self.stats, self.start, alpha=-(1 - m))
        torch._foreach_add_(self.counts, self.shards - 1)

    def average(self, weight: torch.Tensor) -> None:
        """`Ema.update` of every run with this step's averaging weight (1 at the first)."""
        moves = torch._foreach_mul(torch._foreach_sub(self.averaged, self.averages), weight)
        torch._foreach_add_(self.averages, moves)
        if self.counters[0]:  # BatchNorm's batch counters: copied, not averaged
            torch._foreach_copy_(*self.counters)

    def prepare_epoch(self) -> None:
        """Draw each run's batch order and augmentation from its own generator, in the order
        `train_one_epoch` draws them; advance its schedule and average by the epoch's steps;
        copy the tables to the device."""
        n, b, c = len(self.data.train_y), self.batch, self.cfg
        orders, thetas = [], []
        for r in self.members:
            orders.append(torch.randperm(n, generator=r.generator)[: self.steps * b])
            if c.augments:  # step by step, as the loop draws them
                draws = [
                    random_thetas(b, c.rotate, c.shift, r.generator, max_scale=c.scale)
                    for _ in range(self.steps)
                ]
                thetas.append(torch.stack(draws))
        rates = torch.zeros(self.steps, 3, dtype=torch.float64)
        with warnings.catch_warnings():  # the schedule steps without optimizer.step(): expected
            warnings.simplefilter("ignore", UserWarning)
            first = self.members[0]
            for step in range(self.steps):
                group = first.optimizer.param_groups[0]
                rates[step, 0], rates[step, 1] = group["lr"], group.get("momentum", 0.0)
                rates[step, 2] = first.ema.next_weight() if first.ema is not None else 0.0
                for r in self.members:
                    r.scheduler.step()
                    if r.ema is not None:
                        r.ema.updates += 1
        self.order.copy_(torch.stack(orders).view_as(self.order))
        if c.augments:
            self.thetas.copy_(torch.stack(thetas))
        self.rates.copy_(rates)
        self.step_index.zero_()
        self.loss_sum.zero_()
        self.correct.zero_()

    def train_epoch(self) -> list[dict]:
        """One epoch for every run: what `train_one_epoch` returns, per run."""
        self.prepare_epoch()
        self.run_steps()
        seen = self.steps * self.batch
        return [
            {"train_loss": loss / seen, "train_acc": 100.0 * c / seen}
            for loss, c in zip(self.loss_sum.tolist(), self.correct.tolist(), strict=True)
        ]

    def run_steps(self) -> None:
        for _ in range(self.steps):
            self.train_step()

    @torch.no_grad()
    def eval_pass(self) -> None:
        """Loss sum and correct predictions of every run's evaluated weights on the eval set."""
        x_all, y_all, size = self.data.eval_x, self.data.eval_y, self.cfg.eval_batch_size
        with self.side_by_side(self.runs) as places:
            for run, (r, place) in enumerate(zip(self.members, places, strict=True)):
                with place:
                    r.eval_model.eval()
                    loss, correct = torch.zeros((), device=self.device), 0
                    for start in range(0, len(y_all), size):
                        x = x_all[start : start + size].contiguous(memory_format=self.layout)
                        y = y_all[start : start + size]
                        with autocast(self.device, self.amp):
                            log_probs = r.eval_model(x).float()
                        loss = loss + F.nll_loss(log_probs, y, reduction="sum")
                        correct = correct + (log_probs.argmax(1) == y).sum()
                    self.eval_loss[run].copy_(loss)
                    self.eval_correct[run].copy_(correct)

    def evaluate(self) -> list[tuple[float, float]]:
        """Mean loss and accuracy (%) of every run on the eval set, as `train.evaluate`."""
        self.run_eval_pass()
        n = len(self.data.eval_y)
        return [
            (loss / n, 100.0 * c / n)
            for loss, c in zip(self.eval_loss.tolist(), self.eval_correct.tolist(), strict=True)
        ]

    def run_eval_pass(self) -> None:
        self.eval_pass()

    @torch.no_grad()
    def store(self) -> None:
        """Copy SGD's momentum into each run's optimizer (models and averages train in place)."""
        momenta = iter(self.momenta)
        for r in self.members:
            for p in r.model.parameters():
                r.optimizer.state[p]["momentum_buffer"] = next(momenta).clone()
