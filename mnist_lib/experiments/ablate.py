"""The ablation: from the `net` recipe, take one thing away at a time, over several seeds.

Every run holds out the validation split (`VAL_SIZE` images) and is scored on it: the ablation
informs choices, so it never looks at the test set.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..config import TrainConfig, recipe
from ..data import VAL_SIZE
from ..errors import UserError
from ..files import read_json, write_json
from ..run import History
from .sweep import load_sweep, run_seeds, train_commands

ABLATION = "ablation.json"  # in the ablation folder, beside one folder per variant
# What each variant changes in the `net` recipe; "recipe" is the untouched baseline.
ABLATIONS: dict[str, dict] = {
    "recipe": {},
    "original-dropout": {"dropout": 0.05},  # the original Dropout2d(0.05) after every conv
    "no-batchnorm": {"model": "net-nobn"},
    "no-augmentation": {"rotate": 0.0, "shift": 0.0},
    "constant-lr": {"schedule": "constant", "lr": 0.01},  # no schedule: the usual tutorial rate
    "no-ema": {"ema": 0.0},  # evaluate the raw weights
    "flatten-dense": {"model": "net-flat"},  # flatten + dense in place of GAP, same budget
    "whole-batches": {"shards": 1},  # one BatchNorm batch per step: are the shards only speed?
}


def variant_config(name: str) -> TrainConfig:
    return replace(recipe("net", val=VAL_SIZE), **ABLATIONS[name]).validate()


def variant_names(only: list[str] | None) -> list[str]:
    names = only or list(ABLATIONS)
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise UserError(
            f"unknown ablation {', '.join(unknown)}: choose from {', '.join(ABLATIONS)}"
        )
    return names


def ablation_commands(
    seeds: list[int], out: str | Path, only: list[str] | None = None
) -> list[str]:
    """One `train` command per run of the ablation that has not finished yet."""
    return [
        command
        for name in variant_names(only)
        for command in train_commands(variant_config(name), seeds, Path(out) / name)
    ]


def run_ablation(
    seeds: list[int],
    out: str | Path,
    only: list[str] | None = None,
    device: str = "auto",
    data_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train every variant on every seed (finished runs are kept) and write ablation.json."""
    out = Path(out)
    results = {}
    for name in variant_names(only):
        log(f"ablation {name}: {ABLATIONS[name] or 'the recipe as it is'}")
        try:
            summary = run_seeds(
                variant_config(name), seeds, out / name, device, data_dir, progress, log
            )
            results[name] = {"changes": ABLATIONS[name], "summary": summary}
        except UserError as exc:  # e.g. a variant whose loss diverges: that is a result too
            results[name] = {"changes": ABLATIONS[name], "error": str(exc)}
            log(f"ablation {name}: {exc}")
    if (out / ABLATION).is_file():  # keep the variants this call did not train (--only)
        results = {**load_ablation(out), **results}
    results = {name: results[name] for name in ABLATIONS if name in results}
    write_json(out / ABLATION, results)
    return results


def load_ablation(out: str | Path) -> dict:
    """The ablation.json that `run_ablation` wrote into ``out``."""
    path = Path(out) / ABLATION
    if not path.is_file():
        raise UserError(f"no ablation results in {out}: run python -m mnist_lib ablate --out {out}")
    return read_json(path)


def load_ablation_runs(out: str | Path, results: dict) -> dict[str, list[History]]:
    """Each variant's seed histories, for the ablation figure."""
    return {name: load_sweep(Path(out) / name)[1] for name, r in results.items() if "summary" in r}


def chance_difference(results: dict) -> tuple[float, int, float]:
    """How large a difference between two variants the seeds can tell from luck.

    Returns the seed-to-seed standard deviation of the last-N minimum, pooled over the variants
    that trained (a variant stuck at chance has no spread to pool), the number of seeds per
    variant, and 2 * std * sqrt(2 / seeds): about the largest difference between two variants'
    means that chance alone gives, 19 times in 20.
    """
    summaries = [
        r["summary"]
        for r in results.values()
        if "summary" in r and r["summary"]["min_last"]["mean"] > 50
    ]
    if not summaries:
        return math.nan, 0, math.nan
    seeds = min(s["total"] for s in summaries)
    std = math.sqrt(statistics.fmean(s["min_last"]["std"] ** 2 for s in summaries))
    return std, seeds, 2 * std * math.sqrt(2 / seeds)


def ablation_table(results: dict) -> str:
    """One row per variant: params, mean ± std of the final accuracy and of the last-5 minimum,
    the change of that mean against the untouched recipe and whether it is larger than chance
    (`chance_difference`), the worst seed and the passes."""
    base = results.get("recipe", {}).get("summary", {}).get("min_last", {}).get("mean")
    chance = chance_difference(results)[2]
    lines = [
        f"{'variant':<16} | {'params':>6} | {'final acc (%)':>13} | {'last-5 min (%)':>14} | "
        f"{'vs recipe':>9} | {'> chance':>8} | {'worst':>6} | passed"
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"{name:<16} | {'':>6} | {'failed: ' + r['error'][:60]}")
            continue
        s = r["summary"]
        change = s["min_last"]["mean"] - base if base is not None else None
        delta = f"{change:+9.2f}" if change is not None else f"{'':>9}"
        beyond = "" if not change or math.isnan(chance) else "yes" if abs(change) > chance else "no"
        lines.append(
            f"{name:<16} | {s['params']:>6,} | {s['final']['mean']:6.2f} ± "
            f"{s['final']['std']:.2f} | {s['min_last']['mean']:7.2f} ± "
            f"{s['min_last']['std']:.2f} | {delta} | {beyond:>8} | {s['worst_min_last']:6.2f} | "
            f"{s['passed']}/{s['total']}"
        )
    return "\n".join(lines)
