"""Training and evaluation: the optimizer, the schedule, one epoch of steps, and the test pass.

`train_one_epoch` is the plain loop of notebook 03 with the recipe's three additions: the
learning-rate schedule, augmentation of every batch, and the weight average (EMA). What one step
computes (forward, loss, backward) is a `Step`: `PlainStep` below, or a faster one from
`mnist_lib.speed` that computes the same gradients.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .augment import affine, random_thetas
from .config import TrainConfig
from .data import DeviceData
from .device import autocast
from .ema import Ema


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
    """Full batches only (the leftover images change every epoch); at least one step."""
    return max(1, n_train // min(batch_size, n_train))


def shards_per_step(cfg: TrainConfig, n_train: int) -> int:
    """BatchNorm shards per step: the config's, at most one per image of a batch."""
    return min(cfg.shards, cfg.batch_size, n_train)


def training_loss(
    log_probs: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0, reduction: str = "mean"
) -> torch.Tensor:
    """The batch's mean negative log-probability of the true classes (``reduction="none"``: each
    image's); with label ``smoothing`` the target is 1 - smoothing on the true class plus
    smoothing / 10 on every class."""
    if smoothing:  # cross_entropy's log_softmax leaves log-probabilities as they are
        return F.cross_entropy(log_probs, y, label_smoothing=smoothing, reduction=reduction)
    return F.nll_loss(log_probs, y, reduction=reduction)


class Step(Protocol):
    """What `train_one_epoch` uses: a context for the epoch (a faster step may start workers in
    it) that is called for each batch's gradient (see `PlainStep`)."""

    def __enter__(self) -> Step: ...

    def __exit__(self, *exc: object) -> None: ...

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, thetas: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


class PlainStep:
    """One training step's gradient: augment the batch, forward, loss, backward.

    Called with a batch (x, y) and its augmentation matrices (or None); leaves the gradient in
    the model's ``.grad`` and returns the batch's mean loss and its number of correct predictions,
    both as tensors (reading them would wait for the device).
    """

    def __init__(self, model: nn.Module, amp: torch.dtype | None, smoothing: float = 0.0) -> None:
        self.model, self.amp, self.smoothing = model, amp, smoothing

    def __enter__(self) -> PlainStep:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, thetas: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if thetas is not None:
            x = affine(x, thetas)
        self.model.zero_grad(set_to_none=True)
        with autocast(x.device, self.amp):
            log_probs = self.model(x)  # (B, 10)
        loss = training_loss(log_probs.float(), y, self.smoothing)
        loss.backward()
        return loss.detach(), (log_probs.argmax(1) == y).sum()


def train_one_epoch(
    model: nn.Module,
    data: DeviceData,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: TrainConfig,
    generator: torch.Generator,
    step: Step,
    ema: Ema | None = None,
    progress: str | None = None,
) -> dict:
    """One pass over the training images in a random order, ``step`` computing each gradient.

    Returns the epoch's mean training loss, its accuracy (%) on the augmented batches, and the
    first step whose loss was not finite (-1 if none). The sums stay on the device and are read
    once, at the end: no waiting for a GPU inside the epoch.
    """
    model.train()
    n, device = len(data.train_y), data.train_x.device
    bs = min(cfg.batch_size, n)
    steps = steps_per_epoch(n, bs)
    order = torch.randperm(n, generator=generator).to(device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    augment = cfg.augments
    with step:
        for i in tqdm(range(steps), desc=progress, leave=False, disable=progress is None):
            idx = order[i * bs : (i + 1) * bs]
            x, y = data.train_x[idx], data.train_y[idx]  # (B, 1, 28, 28), (B,)
            thetas = (
                random_thetas(len(y), cfg.rotate, cfg.shift, generator, max_scale=cfg.scale)
                if augment
                else None
            )
            loss, batch_correct = step(x, y, thetas)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update()
            loss_sum += loss * len(y)
            correct += batch_correct
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), i, first_bad)
    seen = steps * bs
    return {
        "train_loss": loss_sum.item() / seen,
        "train_acc": 100.0 * correct.item() / seen,
        "first_bad_step": int(first_bad.item()),
    }


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
