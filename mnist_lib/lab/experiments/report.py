"""The results tables, made from the committed runs (never typed by hand): the README's, one row
per course model over all its test seeds, and the lab's, one row per sweep and per design."""

import statistics
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ...config import RECIPES, TrainConfig, changed_fields
from ...data import VAL_SIZE
from ...record import target_misses
from ...seeds import compare_table, lowest, read_histories
from ..paths import RESULTS_DIR
from .designs import DESIGNS
from .sweep import fields_of, load_summary, load_sweep
from .variants import register

register()

# Every test sweep made with the present code (for `shards 1` recipes the redesigned loop computes
# what the earlier code did), and those made with the earlier code, kept apart.
SWEEPS = tuple(
    RESULTS_DIR / f"sweep-{name}"
    for name in (
        "net",
        "net-more",
        "tiny",
        "tiny-more",
        "tiny-10-19",
        "micro",
        "micro19",
        "micro19-more",
    )  # fmt: skip
)
EARLIER = tuple(
    RESULTS_DIR / "earlier-code" / f"sweep-{name}"
    for name in ("net", "net-more", "net-gpu", "tiny")
)


# The course models' test sweeps made with the present code, pooled into one row each.
COURSE_SWEEPS = {"net": ("sweep-net", "sweep-net-more"),
                 "tiny": ("sweep-tiny", "sweep-tiny-more", "sweep-tiny-10-19")}  # fmt: skip


def course_table(sweeps: dict[str, Sequence[str]] = COURSE_SWEEPS) -> str:
    """A markdown table: one row per course model, over every seed of its sweeps."""
    rows = [
        "| model | params | epochs | seeds that hold the target | lowest of the last 5 epochs "
        "(mean ± std) | worst seed | final epoch (mean ± std) | machines |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for model, names in sweeps.items():
        runs = [h for name in names for h in read_histories(RESULTS_DIR / name)]
        lows, finals = [lowest(h) for h in runs], [h.accs()[-1] for h in runs]
        machines = sorted({f"{h.hardware} ({h.precision})" for h in runs})
        seeds, held = sorted(h.seed for h in runs), sum(not target_misses(h) for h in runs)
        rows.append(
            f"| `{model}` | {runs[0].params:,} | {len(runs[0].epochs)} "
            f"| {held}/{len(runs)} (seeds {seeds[0]}-{seeds[-1]}) "
            f"| {statistics.fmean(lows):.2f} ± {statistics.stdev(lows):.2f} % | {min(lows):.2f} % "
            f"| {statistics.fmean(finals):.2f} ± {statistics.stdev(finals):.2f} % "
            f"| {'; '.join(machines)} |"
        )
    return "\n".join(rows)


def duration(seconds: float) -> str:
    """Seconds as "42 s" under a minute, else as "5.1 min"."""
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def results_table(sweeps: Sequence[Path] = SWEEPS) -> str:
    """A markdown table: one row per sweep, read from its summary.json."""
    rows = [
        "| model | params | epochs | final test acc (mean ± std) | last-5 min (mean ± std) "
        "| last-5 min, worst seed | passed | time per run | hardware |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for folder in sweeps:
        s = load_summary(folder)
        with fields_of(folder):
            seeds = ", ".join(str(r["seed"]) for r in s["runs"])
            final, low = s["final"], s["min_last"]
            rows.append(
                f"| `{s['model']}` | {s['params']:,} | {s['epochs']} "
                f"| {final['mean']:.2f} ± {final['std']:.2f} % "
                f"| {low['mean']:.2f} ± {low['std']:.2f} % "
                f"| {s['worst_min_last']:.2f} % | {s['passed']}/{s['total']} (seeds {seeds}) "
                f"| {duration(s['seconds_per_run'])} "
                f"| {s['hardware']} ({s['device']}, {s['precision']}), torch {s['torch']} |"
            )
    return "\n".join(rows)


def search_recipe(model: str) -> TrainConfig:
    """The recipe every candidate was trained with, on the validation split: TinyNet's."""
    return replace(RECIPES["tiny"], model=model, val=VAL_SIZE).validate()


def design_row(s: dict, name: str) -> tuple[float, str] | None:
    """One candidate's row of `design_table`, keyed by its validation mean; None for a test
    sweep."""
    if s["split"] != "val":
        return None
    config = {**s["config"], "seed": 0}
    changes = [
        f"{k} {config[k]}" for k in changed_fields(config, search_recipe(s["model"])) if k != "seed"
    ]
    low = s["min_last"]
    return (
        low["mean"],
        f"| `{name}` | `{DESIGNS[s['model']]}` "
        f"| {s['params']:,} | {', '.join(changes) or '-'} | {s['total']} "
        f"| {low['mean']:.2f} ± {low['std']:.2f} % | {s['worst_min_last']:.2f} % "
        f"| {s['final']['mean']:.2f} % |",
    )


def design_table(folder: str | Path) -> str:
    """A markdown table of the search in ``folder`` (one sweep folder per candidate): the layer
    spec, the parameters, what the run changed in the search recipe, and the validation numbers,
    best first. Test sweeps in ``folder`` (a pick's confirmation) are left out."""
    rows = []
    for summary_file in sorted(Path(folder).glob("*/summary.json")):
        s = load_summary(summary_file.parent)
        with fields_of(summary_file.parent):
            row = design_row(s, summary_file.parent.name)
        if row:
            rows.append(row)
    header = [
        "| run | layers | params | recipe change | seeds | val last-5 min | worst seed "
        "| val final |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    return "\n".join(header + [row for _, row in sorted(rows, reverse=True)])


def tiny_batch_table() -> str:
    """TinyNet's batch size on the validation split: batch 128 (its recipe) against 256."""
    folder = RESULTS_DIR / "validation"
    groups = {f"batch {b}": load_sweep(folder / f"tiny-b{b}")[1] for b in (128, 256)}
    return compare_table(groups, base="batch 128")
