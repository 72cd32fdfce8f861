"""The notebooks' figures: each function returns a matplotlib Figure; `save_figure` writes one.

Figures are made with `matplotlib.figure.Figure`, never pyplot, so no backend is chosen or changed
here: saving renders with Agg, and a notebook shows a figure once, when a cell returns it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator

from .augment import random_affine
from .config import TrainConfig
from .data import MEAN, STD, normalize
from .files import atomic_write
from .record import LAST_N, TARGET_ACC, History, target_misses
from .train import make_optimizer, make_scheduler, steps_per_epoch

DPI = 110
TARGET_STYLE = {"color": "tab:red", "linestyle": "--", "linewidth": 1}
WINDOW_STYLE = {"color": "tab:green", "alpha": 0.12}


class PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which log-axis ticks to label, written as 0.02 rather than 2e-02."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG, atomically; fixed dpi and no version stamp, so a redraw of the same
    figure gives the same bytes."""
    return atomic_write(
        path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    )


def image_axes(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def digit_grid(images: torch.Tensor, labels: torch.Tensor, per_class: int = 8) -> Figure:
    """The first ``per_class`` images of each digit; images uint8 (N, 28, 28), one row per digit."""
    fig = Figure(figsize=(0.8 * per_class + 0.6, 8.9), layout="constrained")
    axes = fig.subplots(10, per_class, squeeze=False)
    for digit in range(10):
        idx = (labels == digit).nonzero().flatten()[:per_class]
        for col, ax in enumerate(axes[digit]):
            image_axes(ax)
            if col < len(idx):
                ax.imshow(images[idx[col]].cpu().numpy(), cmap="gray_r", vmin=0, vmax=255)
        axes[digit, 0].set_ylabel(str(digit), rotation=0, labelpad=10, fontsize=12, va="center")
    fig.suptitle(f"MNIST training images: the first {per_class} of each digit")
    fig.supxlabel("example (28 x 28 pixels each)")
    fig.supylabel("label (digit)")
    return fig


def class_balance(train_labels: torch.Tensor, test_labels: torch.Tensor) -> Figure:
    """Share of each digit in the training and the test split, side by side."""
    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.subplots()
    digits = np.arange(10)
    shares = []
    for offset, (name, labels) in zip(
        (-0.2, 0.2), (("train", train_labels), ("test", test_labels)), strict=True
    ):
        share = 100 * torch.bincount(labels.cpu(), minlength=10).double() / len(labels)
        shares.append(share)
        ax.bar(digits + offset, share.numpy(), width=0.4, label=f"{name} ({len(labels):,} images)")
    ax.axhline(10, color="gray", linestyle=":", linewidth=1, label="uniform (10 %)")
    lo, hi = min(s.min().item() for s in shares), max(s.max().item() for s in shares)
    ax.set_title(f"Class balance: each digit is {lo:.1f} to {hi:.1f} % of its split")
    ax.set_xticks(digits)
    ax.set_xlabel("digit")
    ax.set_ylabel("share of the split (%)")
    ax.set_ylim(0, hi * 1.25)
    ax.legend(loc="upper center", ncols=3)
    return fig


def augment_examples(
    images: torch.Tensor, rotate: float, shift: float, seed: int = 0, n: int = 8, draws: int = 3
) -> Figure:
    """``n`` uint8 images (top row) and ``draws`` rows of their randomly rotated and shifted
    copies."""
    x = normalize(images[:n])  # (n, 1, 28, 28), as the training loop sees them
    generator = torch.Generator().manual_seed(seed)
    rows = [x] + [random_affine(x, rotate, shift, generator) for _ in range(draws)]
    vmin, vmax = (
        (0 - MEAN) / STD,
        (1 - MEAN) / STD,
    )  # where pixel values 0 and 1 land after normalising
    fig = Figure(figsize=(0.95 * n + 1.0, 1.0 * len(rows) + 0.9), layout="constrained")
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (batch, row_axes) in enumerate(zip(rows, axes, strict=True)):
        for image, ax in zip(batch, row_axes, strict=False):
            image_axes(ax)
            ax.imshow(image[0].numpy(), cmap="gray_r", vmin=vmin, vmax=vmax)
        row_axes[0].set_ylabel("original" if r == 0 else f"draw {r}", fontsize=10)
    fig.suptitle(
        f"Augmentation: rotation up to ±{rotate:g}°, shift up to ±{shift:g} px, never a flip"
    )
    fig.supxlabel("training image (28 x 28 px); each row below the first is a new random draw")
    return fig


def text_figure(text: str, title: str) -> Figure:
    """A block of monospaced text (e.g. torchsummary's table) as an image."""
    lines = text.splitlines() or [""]
    # 9 pt monospace: about 0.075 in per character and 0.15 in per line at linespacing 1.2.
    width = 0.075 * max(len(line) for line in lines) + 0.5
    height = 0.15 * len(lines) + 0.8
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))  # IPython does not display a figure without axes
    ax.set_axis_off()
    ax.text(
        0.25 / width,
        1 - 0.5 / height,
        text,
        family="monospace",
        fontsize=9,
        linespacing=1.2,
        va="top",
    )
    fig.suptitle(title, y=1 - 0.12 / height, va="top")
    return fig


def lr_schedule(cfg: TrainConfig, n_train: int | None = None) -> Figure:
    """The learning rate and momentum of every optimizer step of ``cfg``, from a throwaway optimizer
    driven by the training loop's own scheduler. ``n_train`` defaults to the run's training
    images."""
    n_train = n_train or cfg.train_images
    steps = steps_per_epoch(n_train, cfg.batch_size)
    optimizer = make_optimizer(torch.nn.Linear(1, 1), cfg)
    scheduler = make_scheduler(optimizer, cfg, steps)
    lrs, momenta = [], []
    for _ in range(cfg.epochs * steps):
        lrs.append(optimizer.param_groups[0]["lr"])  # the value this step trains with
        momenta.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()  # no gradients, so no change: keeps the scheduler's order check quiet
        scheduler.step()
    epoch = np.arange(len(lrs)) / steps
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax_lr, ax_m = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    ax_lr.plot(epoch, lrs)
    peak = int(np.argmax(lrs))
    ax_lr.annotate(
        f"peak {lrs[peak]:.3g} at epoch {epoch[peak]:.1f}",
        (epoch[peak], lrs[peak]),
        xytext=(4, 5),
        textcoords="offset points",
        va="bottom",
    )
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_ylim(0, max(lrs) * 1.18)
    ax_m.plot(epoch, momenta, color="tab:orange")
    ax_m.set_ylabel("momentum")
    ax_m.set_xlabel("epoch")
    ax_m.set_xlim(0, cfg.epochs)
    ax_m.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax_m.margins(y=0.2)
    ax_lr.set_title(
        f"{cfg.schedule} schedule: {cfg.epochs} epoch{'s' * (cfg.epochs != 1)} x {steps} steps "
        f"of {min(cfg.batch_size, n_train)} images, "
        f"lr {lrs[0]:.3g} -> {lrs[peak]:.3g} -> {lrs[-1]:.2g}"
    )
    return fig


def epoch_axis(ax: Axes, n_epochs: int) -> None:
    """Whole-number epoch ticks from 1 to ``n_epochs``, even for a one-epoch run."""
    ax.set_xlim(0.5, max(n_epochs, 1) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch")


def run_title(history: History) -> str:
    return f"{history.model} ({history.params:,} params), seed {history.seed}, {history.device}"


def zoom_ylim(ax: Axes, accs: list[float]) -> float:
    """Zoom the y axis on the later epochs and the target; return the lower limit."""
    late = accs[-max(LAST_N, len(accs) // 2) :]
    lo = min(TARGET_ACC - 0.4, min(late) - 0.15)
    hi = max(max(late), TARGET_ACC) + 0.25
    ax.set_ylim(lo, hi)
    return lo


def loss_accuracy(history: History) -> Figure:
    """Loss and accuracy per epoch, train and scored (test or validation), with the target."""
    epochs = [e.epoch for e in history.epochs]

    def get(key: str) -> list[float]:
        return [getattr(e, key) for e in history.epochs]

    split = history.split
    test_label = f"{split} (EMA weights)" if history.config.get("ema") else split
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, get("train_loss"), "o-", markersize=3, label="train (augmented batches)")
    ax_loss.plot(epochs, get(f"{split}_loss"), "o-", markersize=3, label=test_label)
    ax_loss.set_yscale("log")
    ax_loss.yaxis.set_major_formatter(PlainLogFormatter())
    ax_loss.yaxis.set_minor_formatter(PlainLogFormatter())
    ax_loss.set_ylabel("loss (NLL, nats per image, log scale)")
    ax_loss.set_title("Loss")
    ax_acc.plot(epochs, get("train_acc"), "o-", markersize=3, label="train (augmented batches)")
    ax_acc.plot(epochs, get(f"{split}_acc"), "o-", markersize=3, label=test_label)
    ax_acc.axhline(TARGET_ACC, **TARGET_STYLE, label=f"target {TARGET_ACC:.2f} %")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("Accuracy")
    for ax in (ax_loss, ax_acc):
        epoch_axis(ax, len(epochs))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{run_title(history)}: loss and accuracy per epoch")
    return fig


def accuracy_zoom(history: History) -> Figure:
    """Scored accuracy per epoch, zoomed near the target, the last-N window shaded and labelled."""
    epochs = [e.epoch for e in history.epochs]
    accs = history.accs()
    misses = target_misses(history)
    fig = Figure(figsize=(8, 4.4), layout="constrained")
    ax = fig.subplots()
    last = epochs[-LAST_N:]
    ax.axvspan(last[0] - 0.5, last[-1] + 0.5, **WINDOW_STYLE, label=f"last {LAST_N} epochs")
    ax.axhline(TARGET_ACC, **TARGET_STYLE, label=f"target {TARGET_ACC:.2f} %")
    ax.plot(epochs, accs, "o-", markersize=4, label=f"{history.split} accuracy")
    for e, a in zip(last, accs[-LAST_N:], strict=True):
        ax.annotate(
            f"{a:.2f}", (e, a), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=8
        )
    lo = zoom_ylim(ax, accs)
    below = [e for e, a in zip(epochs, accs, strict=True) if a < lo]
    epoch_axis(ax, len(epochs))
    if below:
        which = f"epoch {below[0]}" if len(below) == 1 else f"epochs {below[0]}-{below[-1]}"
        ax.set_xlabel(f"epoch ({which} below {lo:.2f} %, off the axis)")
    ax.set_ylabel(f"{history.split} accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    verdict = "fail" if misses else "pass"
    ax.set_title(
        f"{run_title(history)}\nlowest of the last {LAST_N}: {min(accs[-LAST_N:]):.2f} % "
        f"(target {TARGET_ACC:.2f} %: {verdict})"
    )
    return fig


def time_bars(seconds: dict[str, float], title: str) -> Figure:
    """Horizontal bars of where time goes: ``seconds`` per part, largest first, with shares."""
    parts = sorted(seconds.items(), key=lambda item: item[1])
    total = sum(seconds.values())
    fig = Figure(figsize=(8, 0.45 * len(parts) + 1.4), layout="constrained")
    ax = fig.subplots()
    ax.barh([name for name, _ in parts], [1000 * s for _, s in parts], color="tab:blue")
    for i, (_, s) in enumerate(parts):
        ax.annotate(f"{1000 * s:.1f} ms ({100 * s / total:.0f} %)", (1000 * s, i),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)  # fmt: skip
    ax.set_xlim(0, 1000 * max(seconds.values()) * 1.3)
    ax.set_xlabel("milliseconds per step")
    fig.suptitle(title, fontsize="medium")
    ax.grid(axis="x", alpha=0.3)
    return fig
