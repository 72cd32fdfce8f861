"""The README's results table, made from the committed sweep summaries (never typed by hand)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..tools.paths import RESULTS_DIR
from .sweep import load_summary

# The CPU sweeps of the course models, the reference recipe's sweep on a GPU, and more seeds of
# `net`, `tiny` (5-9, then 10-19) and `micro19` (10-19), run later.
SWEEPS = tuple(
    RESULTS_DIR / f"sweep-{name}"
    for name in (
        "net",
        "net-more",
        "net-gpu",
        "tiny",
        "tiny-more",
        "tiny-10-19",
        "micro",
        "micro19",
        "micro19-more",
    )
)


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
