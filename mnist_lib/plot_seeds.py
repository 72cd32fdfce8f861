"""Figures over seeds: every seed's curve of a sweep, and variants of a recipe side by side (the
ablation). Like `plot`'s, each function returns a matplotlib Figure."""

import math

import numpy as np
from matplotlib.figure import Figure

from .plot import TARGET_STYLE, WINDOW_STYLE, epoch_axis, zoom_ylim
from .record import LAST_N, TARGET_ACC, History, target_misses
from .seeds import lowest


def seed_curves(sweeps: list[list[History]]) -> Figure:
    """Scored accuracy per epoch of every seed of each sweep (a panel per sweep, given as its
    seeds' histories), with the min-max band over seeds, the target and the last-N window."""
    rows = math.ceil(len(sweeps) / 3)  # at most 3 panels a row, the rows as even as they can be
    cols = math.ceil(len(sweeps) / rows)
    fig = Figure(figsize=(6 * cols, 4.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax in axes[len(sweeps) :]:
        ax.set_axis_off()
    for ax, histories in zip(axes[: len(sweeps)], sweeps, strict=True):
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
        passed = sum(not target_misses(h) for h in histories)
        ax.set_title(
            f"{histories[0].model} ({histories[0].params:,} params): "
            f"{passed}/{len(histories)} seeds pass"
        )
    fig.suptitle("Accuracy per epoch for every seed of a sweep")
    return fig


def compare_figure(runs: dict[str, list[History]], low: float = 98.8) -> Figure:
    """Left: mean accuracy per epoch of each variant over its seeds (``runs``: each variant's
    histories). Right: each seed's lowest accuracy in the last N epochs, per variant, against
    the target. Values below ``low`` (a variant that did not train) are drawn at the edge, with
    their value, instead of squashing the scale."""
    names = list(runs)
    split = runs[names[0]][0].split
    fig = Figure(figsize=(12, 0.45 * len(names) + 3.2), layout="constrained")
    curves_ax, strip_ax = fig.subplots(1, 2, width_ratios=[1.2, 1])
    for i, name in enumerate(names):
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
        mins = [lowest(h) for h in runs[name]]
        strip_ax.scatter([max(m, low) for m in mins], [i] * len(mins), color=color, s=25, zorder=3)
        if min(mins) >= low:
            strip_ax.plot([np.mean(mins)] * 2, [i - 0.3, i + 0.3], color=color, linewidth=2)
        else:
            strip_ax.annotate(
                f"{min(mins):.2f} %, off the scale",
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
    epoch_axis(curves_ax, max(len(h.epochs) for n in names for h in runs[n]))
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
