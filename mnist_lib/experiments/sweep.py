"""A seed sweep: one run per seed, each in its own folder, then a summary over seeds."""

from __future__ import annotations

import shlex
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..config import TrainConfig, changed_fields, command_line
from ..data import Mnist
from ..errors import UserError
from ..files import read_json, write_json
from ..run import History, RunFolder, fit_together
from ..target import LAST_N, MAX_EPOCHS, TARGET_ACC, check_target

SUMMARY = "summary.json"  # in a sweep folder, beside the seed-N run folders


def seed_folder(out: str | Path, seed: int) -> RunFolder:
    return RunFolder(Path(out) / f"seed-{seed}")


def check_seeds(seeds: list[int]) -> None:
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise UserError(
            f"seed {', '.join(map(str, twice))} given more than once: list each seed once"
        )


def unfinished_seeds(cfg: TrainConfig, seeds: list[int], out: str | Path) -> list[int]:
    """The seeds without a finished run in ``out``; a finished run made with other settings than
    ``cfg`` is an error (one line), never silently reused."""
    check_seeds(seeds)
    todo = []
    for seed in seeds:
        folder = seed_folder(out, seed)
        if not folder.is_finished():
            todo.append(seed)
            continue
        other = changed_fields(folder.read_history().config, replace(cfg, seed=seed))
        if other:
            raise UserError(
                f"{folder.path} holds a finished run made with other settings "
                f"({', '.join(other)}): choose another --out, or retrain with --force"
            )
    return todo


def train_commands(cfg: TrainConfig, seeds: list[int], out: str | Path) -> list[str]:
    """One self-contained `train` command per seed that has no finished run in ``out``."""
    commands = []
    for s in unfinished_seeds(cfg, seeds, out):
        options = command_line(replace(cfg, seed=s))
        if "--seed" not in options:  # the recipe's own seed: still say it
            options += ["--seed", str(s)]
        out_dir = str(seed_folder(out, s).path)
        commands.append(
            shlex.join(
                ["python", "-m", "mnist_lib", "train", *options, "--out", out_dir, "--no-progress"]
            )
        )
    return commands


def run_seeds(
    cfg: TrainConfig,
    seeds: list[int],
    out: str | Path,
    device: str = "auto",
    data_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    max_epochs: int = MAX_EPOCHS,
    force: bool = False,
    data: Mnist | None = None,
) -> dict:
    """Train every seed that has no finished run in ``out`` (resuming interrupted ones), or every
    seed with ``force`` (on a GPU together, in one step: `mnist_lib.run.fit_together`); then
    summarise all of them into summary.json. ``data``: MNIST already loaded, else it is loaded
    from ``data_dir``."""
    check_seeds(seeds)
    todo = seeds if force else unfinished_seeds(cfg, seeds, out)
    for seed in seeds:
        if seed not in todo:
            log(f"seed {seed}: already finished in {seed_folder(out, seed).path}, kept")
    folders = [seed_folder(out, seed) for seed in todo]
    if todo:  # on a GPU the seeds train together, in one step; else one after the other
        fit_together(
            [replace(cfg, seed=seed) for seed in todo],
            [folder.path for folder in folders],
            device=device,
            data_dir=data_dir,
            resume=[(f.staging if force else f).checkpoint.exists() for f in folders],
            force=force,
            progress=progress,
            log=log,
            data=data,
        )
    return summarize_folder(out, seeds, max_epochs)


def summarize_folder(out: str | Path, seeds: list[int], max_epochs: int = MAX_EPOCHS) -> dict:
    """Summarise the finished runs of ``seeds`` in ``out`` and write summary.json there."""
    summary = summarize([seed_folder(out, s).read_history() for s in seeds], max_epochs)
    write_json(Path(out) / SUMMARY, summary)
    return summary


def mean_std(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def summarize(histories: list[History], max_epochs: int = MAX_EPOCHS) -> dict:
    """Per seed: the last-N accuracies, their minimum, the final one, pass/fail; over seeds:
    mean ± std."""
    runs = []
    for h in histories:
        result = check_target(h, max_epochs)
        runs.append(
            {
                "seed": h.seed,
                "last": result.last_accs,
                "min_last": min(result.last_accs),
                "final": result.last_accs[-1],
                "passed": result.passed,
                "seconds": sum(e.seconds / (e.together or 1) for e in h.epochs),  # its share
            }
        )
    first = histories[0]
    return {
        "model": first.model,
        "params": first.params,
        "epochs": len(first.epochs),
        "device": first.device,
        "precision": first.precision,
        "hardware": first.hardware,
        "torch": first.torch,
        "config": {k: v for k, v in first.config.items() if k != "seed"},
        "split": first.split,
        "target": {"acc": TARGET_ACC, "last_n": LAST_N, "max_epochs": max_epochs},
        "runs": runs,
        "final": mean_std([r["final"] for r in runs]),
        "min_last": mean_std([r["min_last"] for r in runs]),
        "worst_min_last": min(r["min_last"] for r in runs),
        "passed": sum(r["passed"] for r in runs),
        "total": len(runs),
        "seconds_per_run": statistics.fmean(r["seconds"] for r in runs),
        "trained_together": max(e.together or 1 for h in histories for e in h.epochs),
    }


def summary_table(summary: dict) -> str:
    """The summary as a fixed-width text table, one row per seed and a footer over seeds."""
    n, split = summary["target"]["last_n"], summary.get("split", "test")
    lines = [
        f"{summary['model']}: {summary['params']:,} params, {summary['epochs']} epochs, "
        f"target >= {summary['target']['acc']:.2f} % in each of the last {n}",
        f"{'seed':>4} | {f'last {n} {split} acc (%)':<34} | {'min':>6} | {'final':>6} | result",
    ]
    for r in summary["runs"]:
        accs = " ".join(f"{a:.2f}" for a in r["last"])
        lines.append(
            f"{r['seed']:>4} | {accs:<34} | {r['min_last']:6.2f} | {r['final']:6.2f} | "
            f"{'pass' if r['passed'] else 'FAIL'}"
        )
    f, m = summary["final"], summary["min_last"]
    lines.append(
        f"final {f['mean']:.2f} ± {f['std']:.2f} % | last-{n} min {m['mean']:.2f} ± "
        f"{m['std']:.2f} % (worst {summary['worst_min_last']:.2f}) | "
        f"passed {summary['passed']}/{summary['total']}"
    )
    return "\n".join(lines)


def load_summary(out: str | Path) -> dict:
    return read_json(Path(out) / SUMMARY)


def load_sweep(out: str | Path) -> tuple[dict, list[History]]:
    """A sweep's summary and the history of each of its seeds, for tables and figures."""
    summary = load_summary(out)
    return summary, [seed_folder(out, r["seed"]).read_history() for r in summary["runs"]]
