"""The notebooks' figures: each function returns a matplotlib Figure; `save_figure` writes one.

Figures are made with `matplotlib.figure.Figure`, never pyplot, so no backend is chosen or changed
here: saving renders with Agg, and a notebook shows a figure once, when a cell returns it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator

from .augment import random_affine
from .config import TrainConfig
from .data import MEAN, STD, TRAIN_SIZE, normalize
from .files import atomic_write
from .run import History
from .target import LAST_N, TARGET_ACC, check_target
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
    n_train = n_train or cfg.limit_train or TRAIN_SIZE - cfg.val
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
    result = check_target(history)
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
    verdict = "pass" if result.passed else "fail"
    ax.set_title(
        f"{run_title(history)}\nlowest of the last {LAST_N}: {min(result.last_accs):.2f} % "
        f"(target {TARGET_ACC:.2f} %: {verdict})"
    )
    return fig


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """Counts (classes, classes): row = true label, column = prediction."""
    labels, preds = labels.cpu().long(), preds.cpu().long()
    return torch.bincount(labels * classes + preds, minlength=classes * classes).reshape(
        classes, classes
    )


def confusion_figure(cm: torch.Tensor) -> Figure:
    """The confusion matrix with counts in the cells, on a log colour scale: the few errors show."""
    counts = cm.cpu().numpy()
    total, errors = int(counts.sum()), int(counts.sum() - np.trace(counts))
    fig = Figure(figsize=(6.6, 5.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(
        np.ma.masked_equal(counts, 0), cmap="Blues", norm=LogNorm(vmin=1, vmax=max(counts.max(), 2))
    )
    for (i, j), n in np.ndenumerate(counts):
        if n:
            ax.text(
                j,
                i,
                str(n),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if n > math.sqrt(counts.max()) else "black",
            )
    ax.set_xticks(range(len(counts)))
    ax.set_yticks(range(len(counts)))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    fig.colorbar(image, ax=ax, label="test images (count, log colour scale)")
    accuracy = 100 * (total - errors) / total
    ax.set_title(f"Confusion matrix: {errors} errors in {total:,} test images ({accuracy:.2f} %)")
    return fig


def misclassified(
    images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor, n: int = 24, cols: int = 8
) -> Figure:
    """The misclassified images, most confident mistakes first; images uint8 (N, 28, 28), probs
    (N, 10)."""
    probs, labels = probs.cpu(), labels.cpu()
    confidence, preds = probs.max(1)
    wrong = (preds != labels).nonzero().flatten()
    shown = wrong[confidence[wrong].argsort(descending=True)][:n]
    rows = max(1, math.ceil(len(shown) / cols))
    fig = Figure(figsize=(1.25 * cols, 1.55 * rows + 1.0), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax in axes:
        ax.set_axis_off()
    for ax, i in zip(axes, shown.tolist(), strict=False):  # fewer mistakes than panels is fine
        ax.set_axis_on()
        image_axes(ax)
        ax.imshow(images[i].cpu().numpy(), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(
            f"true {int(labels[i])}, pred {int(preds[i])}\n{100 * confidence[i]:.0f} % sure",
            fontsize=8,
        )
    fig.suptitle(
        f"Misclassified test digits: {len(shown)} of {len(wrong)} errors in {len(labels):,} "
        "images, most confident first"
    )
    fig.supxlabel(
        "test image (28 x 28 px); above each: true label, prediction, probability of the "
        "prediction",
        fontsize=9,
    )
    return fig


def seed_curves(sweeps: list[tuple[dict, list[History]]]) -> Figure:
    """Scored accuracy per epoch of every seed of each sweep (one panel per sweep: its summary and
    its seeds' histories), with the min-max band over seeds, the target and the last-N window."""
    rows = math.ceil(len(sweeps) / 3)  # at most 3 panels a row, the rows as even as they can be
    cols = math.ceil(len(sweeps) / rows)
    fig = Figure(figsize=(6 * cols, 4.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax in axes[len(sweeps) :]:
        ax.set_axis_off()
    for ax, (summary, histories) in zip(axes[: len(sweeps)], sweeps, strict=True):
        n_epochs = min(len(h.epochs) for h in histories)
        accs = np.array([h.accs()[:n_epochs] for h in histories])  # (seeds, epochs)
        epochs = np.arange(1, n_epochs + 1)
        ax.axvspan(
            epochs[-min(LAST_N, n_epochs)] - 0.5,
            n_epochs + 0.5,
            **WINDOW_STYLE,
            label=f"last {LAST_N} epochs",
        )
        ax.fill_between(
            epochs, accs.min(0), accs.max(0), color="gray", alpha=0.25, label="min-max over seeds"
        )
        for h, row in zip(histories, accs, strict=True):
            ax.plot(epochs, row, linewidth=1, label=f"seed {h.seed}")
        ax.axhline(TARGET_ACC, **TARGET_STYLE, label=f"target {TARGET_ACC:.2f} %")
        zoom_ylim(ax, list(accs.min(0)))
        epoch_axis(ax, n_epochs)
        ax.set_ylabel(f"{histories[0].split} accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, ncols=4)
        ax.set_title(
            f"{summary['model']} ({summary['params']:,} params): "
            f"{summary['passed']}/{summary['total']} seeds pass"
        )
    fig.suptitle("Accuracy per epoch for every seed of a sweep")
    return fig


def ablation_figure(results: dict, runs: dict[str, list[History]], low: float = 98.8) -> Figure:
    """Left: mean accuracy per epoch of each ablation variant over its seeds (``runs``: the
    variant's histories). Right: each seed's lowest accuracy in the last N epochs, per variant,
    against the target. Values below ``low`` (a variant that did not train) are drawn at the edge,
    with their value, instead of squashing the scale."""
    names = [n for n, r in results.items() if "summary" in r]
    split = runs[names[0]][0].split
    fig = Figure(figsize=(12, 0.45 * len(names) + 3.2), layout="constrained")
    curves_ax, strip_ax = fig.subplots(1, 2, width_ratios=[1.2, 1])
    for i, name in enumerate(names):
        summary = results[name]["summary"]
        accs = np.array([h.accs() for h in runs[name]])  # (seeds, epochs)
        color = f"C{i}"
        epochs = np.arange(1, accs.shape[1] + 1)
        mean_curve = accs.mean(0)
        curves_ax.plot(
            epochs,
            mean_curve,
            color=color,
            linewidth=1.5 if name == "recipe" else 1,
            label=f"{name} (below {low:g} %)" if mean_curve.max() < low else name,
        )
        mins = [r["min_last"] for r in summary["runs"]]
        strip_ax.scatter([max(m, low) for m in mins], [i] * len(mins), color=color, s=25, zorder=3)
        if summary["worst_min_last"] >= low:
            strip_ax.plot(
                [summary["min_last"]["mean"]] * 2, [i - 0.3, i + 0.3], color=color, linewidth=2
            )
        else:
            strip_ax.annotate(
                f"{summary['worst_min_last']:.2f} %, off the scale",
                (low, i),
                xytext=(6, 6),
                textcoords="offset points",
                fontsize=8,
                color=color,
            )
    for ax in (curves_ax, strip_ax):
        ax.grid(alpha=0.3)
    curves_ax.axhline(TARGET_ACC, **TARGET_STYLE, label=f"target {TARGET_ACC:.2f} %")
    curves_ax.set_ylim(low, 99.7)
    epoch_axis(curves_ax, max(results[n]["summary"]["epochs"] for n in names))
    curves_ax.set_ylabel(f"{split} accuracy (%), mean over seeds")
    curves_ax.set_title(f"{split.capitalize()} accuracy per epoch")
    curves_ax.legend(fontsize=8, loc="lower right")
    strip_ax.axvline(TARGET_ACC, **TARGET_STYLE)
    strip_ax.set_yticks(range(len(names)), names)
    strip_ax.invert_yaxis()
    strip_ax.set_xlim(low - 0.02, 99.7)
    strip_ax.set_xlabel(f"lowest {split} accuracy in the last {LAST_N} epochs (%)")
    strip_ax.set_title("Per seed (dots) and mean (bar)")
    fig.suptitle("Ablation: the reference Net and recipe with one thing taken away at a time")
    return fig


def first_layer_filters(model: torch.nn.Module) -> Figure:
    """The 3x3 kernels of the first convolution, one panel per output channel."""
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    weights = conv.weight.detach().float().cpu()[:, 0]  # (C, k, k)
    limit = weights.abs().max().item()
    fig = Figure(figsize=(1.3 * len(weights) + 0.8, 2.0), layout="constrained")
    axes = fig.subplots(1, len(weights), squeeze=False)[0]
    for i, (ax, kernel) in enumerate(zip(axes, weights, strict=True)):
        image_axes(ax)
        image = ax.imshow(kernel.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"channel {i}", fontsize=8)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="weight")
    fig.suptitle(
        f"The first layer's {len(weights)} filters ({weights.shape[-1]}x"
        f"{weights.shape[-1]}): red adds where the pixel is bright, blue subtracts"
    )
    return fig


def activations(model: torch.nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output (C, H, W) of each of ``model``'s top-level blocks that gives feature maps, for one
    normalised image (1, 28, 28), in eval mode."""
    maps: dict[str, torch.Tensor] = {}
    hooks = [
        child.register_forward_hook(
            lambda m, i, o, name=name: (
                maps.update({name: o[0].detach().float().cpu()}) if o.dim() == 4 else None
            )
        )
        for name, child in model.named_children()
    ]
    try:
        with torch.inference_mode():
            model.eval()(image[None].to(next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: m for name, m in maps.items() if m.shape[-1] > 1}


def feature_maps(model: torch.nn.Module, image: torch.Tensor, channels: int = 8) -> Figure:
    """One digit through the network: the first ``channels`` feature maps after each block."""
    maps = activations(model, image)
    fig = Figure(figsize=(1.2 * channels + 1.8, 1.3 * len(maps) + 0.9), layout="constrained")
    axes = fig.subplots(len(maps), channels, squeeze=False)
    for row, (name, block) in zip(axes, maps.items(), strict=True):
        for c, ax in enumerate(row):
            image_axes(ax)
            if c < len(block):
                ax.imshow(block[c].numpy(), cmap="magma")
        row[0].set_ylabel(f"{name}\n{'x'.join(map(str, block.shape))}", fontsize=8)
    fig.suptitle(
        "One test digit through the network: the first channels after each block "
        "(bright = strong activation)"
    )
    return fig


def receptive_fields(rows: list[dict], image: torch.Tensor) -> Figure:
    """The receptive field of one output value after each convolution, drawn on a digit
    (uint8, 28 x 28): the square of input pixels that value depends on."""
    from matplotlib.patches import Rectangle

    convs = [r for r in rows if r["type"] == "Conv2d"]
    fig = Figure(figsize=(1.6 * len(convs) + 0.5, 2.3), layout="constrained")
    axes = fig.subplots(1, len(convs), squeeze=False)[0]
    for ax, r in zip(axes, convs, strict=True):
        image_axes(ax)
        ax.imshow(image.cpu().numpy(), cmap="gray_r", vmin=0, vmax=255)
        corner = 13.5 - r["rf"] / 2 + 0.5
        ax.add_patch(
            Rectangle(
                (corner - 0.5, corner - 0.5),
                r["rf"],
                r["rf"],
                fill=False,
                edgecolor="tab:red",
                linewidth=1.5,
            )
        )
        ax.set_xlim(-0.5 - 3, 27.5 + 3)
        ax.set_ylim(27.5 + 3, -0.5 - 3)
        ax.set_title(f"{r['name']}\nRF {r['rf']} px", fontsize=8)
    fig.suptitle("Receptive field of one output value after each convolution (red square)")
    return fig


def class_activation_maps(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    probs: torch.Tensor,
    n: int = 8,
) -> Figure:
    """Where the network looked, for the ``n`` most confident mistakes: the class activation map
    of the predicted class (GAP + Linear make it the dense weights applied to the last feature
    maps), over each digit. ``images`` uint8 (N, 28, 28), ``probs`` (N, 10)."""
    confidence, preds = probs.max(1)
    wrong = (preds != labels.cpu()).nonzero().flatten()
    shown = wrong[confidence[wrong].argsort(descending=True)][:n].tolist()
    features: dict[str, torch.Tensor] = {}
    hook = model.gap.register_forward_hook(lambda m, i, o: features.update(x=i[0].detach()))
    try:
        with torch.inference_mode():
            model.eval()(normalize(images[shown]).to(next(model.parameters()).device))
    finally:
        hook.remove()
    weights = model.dense.weight.detach().float().cpu()  # (10, C)
    maps = torch.einsum("kc,nchw->nkhw", weights, features["x"].float().cpu())  # (n, 10, h, w)
    fig = Figure(figsize=(1.5 * max(len(shown), 1) + 0.5, 2.3), layout="constrained")
    axes = fig.subplots(1, max(len(shown), 1), squeeze=False)[0]
    for ax, i, cam in zip(axes, shown, maps, strict=False):
        image_axes(ax)
        heat = torch.nn.functional.interpolate(
            cam[preds[i]][None, None], size=(28, 28), mode="bilinear", align_corners=False
        )[0, 0]
        ax.imshow(images[i].cpu().numpy(), cmap="gray", vmin=0, vmax=255)
        ax.imshow(heat.numpy(), cmap="jet", alpha=0.45)
        ax.set_title(f"true {int(labels[i])}, read {int(preds[i])}", fontsize=8)
    fig.suptitle(
        "Class activation maps of the most confident mistakes: where the predicted "
        "class found its evidence (red)"
    )
    return fig


def prediction(image: torch.Tensor, probs: torch.Tensor, title: str) -> Figure:
    """A digit as the network sees it (uint8, 28 x 28) and its class probabilities."""
    fig = Figure(figsize=(7.5, 2.8), layout="constrained")
    ax_image, ax_bars = fig.subplots(1, 2, width_ratios=[1, 2.2])
    image_axes(ax_image)
    ax_image.imshow(image.cpu().numpy(), cmap="gray_r", vmin=0, vmax=255)
    ax_image.set_title("as MNIST stores it", fontsize=9)
    best = int(probs.argmax())
    ax_bars.bar(
        range(10),
        100 * probs.numpy(),
        color=["tab:green" if c == best else "tab:gray" for c in range(10)],
    )
    ax_bars.set_xticks(range(10))
    ax_bars.set_ylim(0, 105)
    ax_bars.set_xlabel("digit")
    ax_bars.set_ylabel("probability (%)")
    fig.suptitle(f"{title}: read as {best} ({100 * probs[best]:.1f} %)")
    return fig
