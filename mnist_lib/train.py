"""Training and evaluation: the optimizer, the learning-rate schedule, the weight average, one
epoch of steps, and the test pass. Notebook 03 writes the same loop out, cell by cell."""

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .augment import affine, random_thetas
from .config import TrainConfig
from .data import DeviceData
from .device import autocast


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    return torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    total = cfg.epochs * steps_per_epoch
    # OneCycleLR divides by zero when its warm-up ends exactly at step 0 (pct_start * total == 1).
    pct_start = 0.25 if total != 4 else 0.5
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=cfg.lr,
        total_steps=total,
        pct_start=pct_start,
        div_factor=10,
        final_div_factor=100,
    )


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches only: the leftover images change every epoch."""
    return n_train // batch_size


class Ema:
    """An exponential moving average of a model's weights and BatchNorm statistics: ``module``
    follows ``model`` as avg <- avg + (1 - d) (model - avg) after every step.

    The decay ramps up as d = min(decay, (1 + n) / (warmup + n)) over the n updates so far, so a
    short run is not dominated by the random initial weights; the first update copies the model.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: int = 10) -> None:
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay, self.warmup = decay, warmup
        self.updates = 0
        # The tensor pairs (average, model), found once: walking the modules every step costs
        # more than the update. BatchNorm's batch counters are copied, not averaged.
        pairs = list(
            zip(
                [*self.module.parameters(), *self.module.buffers()],
                [*model.parameters(), *model.buffers()],
                strict=True,
            )
        )
        self.floats = (
            [a for a, _ in pairs if a.is_floating_point()],
            [m for a, m in pairs if a.is_floating_point()],
        )
        self.counters = (
            [a for a, _ in pairs if not a.is_floating_point()],
            [m for a, m in pairs if not a.is_floating_point()],
        )

    def next_weight(self) -> float:
        """The next update's weight 1 - d of the model (1 at the first update: a copy)."""
        ramp = (1 + self.updates) / (self.warmup + self.updates)
        return 1 - min(self.decay, ramp) if self.updates else 1.0

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the model (call after every optimizer step); every tensor in
        one fused call, with no GPU sync."""
        torch._foreach_lerp_(*self.floats, self.next_weight())  # weight 1: an exact copy
        if self.counters[0]:
            torch._foreach_copy_(*self.counters)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]


def training_loss(log_probs: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """The mean negative log-probability of the true classes; with label ``smoothing`` the target
    is 1 - smoothing on the true class plus smoothing / 10 on every class."""
    if smoothing:  # cross_entropy's log_softmax leaves log-probabilities as they are
        return F.cross_entropy(log_probs, y, label_smoothing=smoothing)
    return F.nll_loss(log_probs, y)


def forward_backward(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, amp: torch.dtype | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward over one batch in ``cfg.shards`` ghost batches: BatchNorm normalises
    each with its own statistics. Their losses, weighted by size, add up to the batch's mean
    loss, so their gradients add up to its gradient. Returns that loss and the number of correct
    predictions, as tensors (reading them would wait for a GPU)."""
    loss_sum, correct = 0, 0
    for xs, ys in zip(x.tensor_split(cfg.shards), y.tensor_split(cfg.shards), strict=True):
        with autocast(x.device, amp):
            log_probs = model(xs)  # (b, 10)
        loss = training_loss(log_probs.float(), ys, cfg.label_smoothing) * (len(ys) / len(y))
        loss.backward()  # adds to the gradients of the ghost batches before it
        loss_sum = loss_sum + loss.detach()
        correct = correct + (log_probs.argmax(1) == ys).sum()
    return loss_sum, correct


def train_one_epoch(
    model: nn.Module,
    data: DeviceData,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: TrainConfig,
    generator: torch.Generator,
    ema: Ema | None = None,
    amp: torch.dtype | None = None,
    step: Callable[..., tuple[torch.Tensor, torch.Tensor]] = forward_backward,
) -> dict:
    """One pass over the training images in a random order: the mean training loss and the
    accuracy (%) on the augmented batches, each read once, at the end of the epoch. ``step``
    computes each batch's gradient: `forward_backward`, or the lab's parallel twin of it."""
    model.train()
    n, device = len(data.train_y), data.train_x.device
    order = torch.randperm(n, generator=generator).to(device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    steps = steps_per_epoch(n, cfg.batch_size)
    for i in range(steps):
        idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        x, y = data.train_x[idx], data.train_y[idx]  # (B, 1, 28, 28), (B,)
        if cfg.augments:
            x = affine(
                x, random_thetas(len(y), cfg.rotate, cfg.shift, generator, max_scale=cfg.scale)
            )
        optimizer.zero_grad()
        loss, batch_correct = step(model, x, y, cfg, amp)
        optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update()
        loss_sum += loss * len(y)
        correct += batch_correct
    seen = steps * cfg.batch_size
    return {"train_loss": loss_sum.item() / seen, "train_acc": 100.0 * correct.item() / seen}


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 500,
    amp: torch.dtype | None = None,
) -> tuple[float, float]:
    """Mean loss and accuracy (%) of ``model`` on normalised images, in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), device=images.device)
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    for start in range(0, len(labels), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        with autocast(images.device, amp):
            log_probs = model(x).float()  # (B, 10)
        loss_sum += F.nll_loss(log_probs, y, reduction="sum")
        correct += (log_probs.argmax(1) == y).sum()
    return loss_sum.item() / len(labels), 100.0 * correct.item() / len(labels)


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Class probabilities (N, 10) of normalised images, in fp32."""
    model.eval()
    return torch.cat(
        [model(images[i : i + batch_size]).float().exp() for i in range(0, len(images), batch_size)]
    )
