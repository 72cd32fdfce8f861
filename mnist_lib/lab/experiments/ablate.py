"""The ablation: from the `net` recipe, take one thing away at a time, over several seeds.

Every run holds out the validation split (`VAL_SIZE` images) and is scored on it: the ablation
informs choices, so it never looks at the test set.
"""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ...config import TrainConfig, UserError, recipe
from ...data import VAL_SIZE
from ...files import made, read_json, write_json
from ...record import History
from ...seeds import compare_table
from .sweep import load_sweep, run_seeds, train_commands
from .variants import register

register()  # the variants' models

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
    log: Callable[[str], None] = print,
    fast: bool = False,
) -> dict:
    """Train every variant on every seed (finished runs are kept) and write ablation.json."""
    out = Path(out)
    with made(out):  # an ablation refused before its first run leaves no folder
        results = {}
        for name in variant_names(only):
            log(f"ablation {name}: {ABLATIONS[name] or 'the recipe as it is'}")
            try:
                summary = run_seeds(
                    variant_config(name), seeds, out / name, device, data_dir, log, fast=fast
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
        raise UserError(
            f"no ablation results in {out}: run python -m mnist_lib.lab ablate --out {out}"
        )
    results = read_json(path)
    if not (isinstance(results, dict) and all(isinstance(r, dict) for r in results.values())):
        raise UserError(f"{path} is not an ablation's results: delete it, and run the same ablate "
                        "command again to write it")  # fmt: skip
    return results


def load_ablation_runs(out: str | Path, results: dict | None = None) -> dict[str, list[History]]:
    """Each variant's seed histories (the variants that trained), for tables and figures."""
    results = results or load_ablation(out)
    return {name: load_sweep(Path(out) / name)[1] for name, r in results.items() if "summary" in r}


def ablation_table(out: str | Path, rows: list[str] | None = None) -> str:
    """`mnist_lib.seeds.compare_table` of the ablation in ``out`` against its recipe, the chance
    threshold always from the whole ablation; with ``rows``, only those variants are shown."""
    results = load_ablation(out)
    lines = compare_table(load_ablation_runs(out, results), "recipe").splitlines()
    lines = [lines[0], *(line for line in lines[1:] if not rows or line.split()[0] in rows)]
    failed = [f"{n:<16} | failed: {r['error'][:60]}" for n, r in results.items() if "error" in r]
    return "\n".join(lines + failed)
