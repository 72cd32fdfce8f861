"""A seed sweep: one `fit` per seed, each in its own folder, then a summary over seeds."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .files import read_json, write_json
from .target import LAST_N, MAX_EPOCHS, TARGET_ACC, check_target
from .train import TrainConfig, fit, is_finished


def seed_dir(out: Path, seed: int) -> Path:
    return out / f"seed-{seed}"


def run_seeds(cfg: TrainConfig, seeds: list[int], out: str | Path, device: str = "auto",
              data_dir: str | Path | None = None, progress: bool = True,
              log: Callable[[str], None] = print, max_epochs: int = MAX_EPOCHS) -> dict:
    """Train one run per seed (skipping finished ones, resuming interrupted ones) and summarise."""
    out = Path(out)
    for seed in seeds:
        run = seed_dir(out, seed)
        if is_finished(run):
            log(f"seed {seed}: already finished in {run}, kept")
            continue
        fit(replace(cfg, seed=seed), run, device=device, data_dir=data_dir,
            resume=(run / "checkpoint.pt").exists(), progress=progress, log=log)
    histories = [read_json(seed_dir(out, s) / "history.json") for s in seeds]
    summary = summarize(histories, max_epochs)
    write_json(out / "summary.json", summary)
    return summary


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarize(histories: list[dict], max_epochs: int = MAX_EPOCHS) -> dict:
    """Per seed: the last-N accuracies, their minimum, the final one, pass/fail; over seeds: mean ± std."""
    runs = []
    for h in histories:
        result = check_target(h, max_epochs)
        runs.append({
            "seed": h["seed"], "last": result.last_accs, "min_last": min(result.last_accs),
            "final": result.last_accs[-1], "passed": result.passed,
            "seconds": sum(e["seconds"] for e in h["epochs"]),
        })
    first = histories[0]
    return {
        "model": first["model"], "params": first["params"], "epochs": len(first["epochs"]),
        "device": first["device"], "precision": first.get("precision"), "hardware": first.get("hardware"),
        "torch": first.get("torch"), "config": {k: v for k, v in first["config"].items() if k != "seed"},
        "target": {"acc": TARGET_ACC, "last_n": LAST_N, "max_epochs": max_epochs},
        "runs": runs,
        "final": mean_std([r["final"] for r in runs]),
        "min_last": mean_std([r["min_last"] for r in runs]),
        "worst_min_last": min(r["min_last"] for r in runs),
        "passed": sum(r["passed"] for r in runs), "total": len(runs),
        "seconds_per_run": statistics.fmean(r["seconds"] for r in runs),
    }


def summary_table(summary: dict) -> str:
    """The summary as a fixed-width text table, one row per seed and a footer over seeds."""
    n = summary["target"]["last_n"]
    lines = [f"{summary['model']}: {summary['params']:,} params, {summary['epochs']} epochs, "
             f"target >= {summary['target']['acc']:.2f} % in each of the last {n}",
             f"{'seed':>4} | {'last ' + str(n) + ' test acc (%)':<34} | {'min':>6} | {'final':>6} | result"]
    for r in summary["runs"]:
        accs = " ".join(f"{a:.2f}" for a in r["last"])
        lines.append(f"{r['seed']:>4} | {accs:<34} | {r['min_last']:6.2f} | {r['final']:6.2f} | "
                     f"{'pass' if r['passed'] else 'FAIL'}")
    f, m = summary["final"], summary["min_last"]
    lines.append(f"final {f['mean']:.2f} ± {f['std']:.2f} % | last-{n} min {m['mean']:.2f} ± {m['std']:.2f} % "
                 f"(worst {summary['worst_min_last']:.2f}) | passed {summary['passed']}/{summary['total']}")
    return "\n".join(lines)


def load_summary(out: str | Path) -> dict:
    return read_json(Path(out) / "summary.json")
