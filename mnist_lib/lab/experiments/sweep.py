"""A seed sweep: one run per seed, each in its own folder, then a summary over every seed there."""

import shlex
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path

from ...__main__ import option_name
from ...config import TrainConfig, UserError, changed_fields, recipe, saved_config
from ...data import Mnist, load_mnist
from ...device import pick_device
from ...files import made, read_json, write_json
from ...fit import fit
from ...record import LAST_N, MAX_EPOCHS, TARGET_ACC, History, RunFolder, target_misses
from ..speed.together import fit_fast, fit_together

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


def command_line(cfg: TrainConfig) -> list[str]:
    """The `train` options that turn the model's recipe into ``cfg`` (``--model`` first)."""
    base = recipe(cfg.model)
    args = [option_name("model"), cfg.model]
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.name != "model" and value != getattr(base, f.name):
            args += [option_name(f.name), str(value)]
    return args


def train_commands(cfg: TrainConfig, seeds: list[int], out: str | Path) -> list[str]:
    """One self-contained `train` command per seed that has no finished run in ``out``."""
    commands = []
    for s in unfinished_seeds(cfg, seeds, out):
        options = command_line(replace(cfg, seed=s))
        if "--seed" not in options:  # the recipe's own seed: still say it
            options += ["--seed", str(s)]
        out_dir = str(seed_folder(out, s).path)
        command = ["python", "-m", "mnist_lib.lab", "train", *options, "--out", out_dir]
        commands.append(shlex.join(command))
    return commands


def run_seeds(
    cfg: TrainConfig,
    seeds: list[int],
    out: str | Path,
    device: str = "auto",
    data_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    max_epochs: int = MAX_EPOCHS,
    force: bool = False,
    data: Mnist | None = None,
    fast: bool = False,
) -> dict:
    """Train every seed that has no finished run in ``out`` (resuming interrupted ones), or every
    seed with ``force``; then summarise every finished seed in ``out`` into summary.json.

    On a GPU the seeds train together, in one recorded step (`fit_together`); on a CPU one after
    the other, by `fit` (by `fit_fast` with ``fast``)."""
    check_seeds(seeds)
    todo = seeds if force else unfinished_seeds(cfg, seeds, out)
    for seed in seeds:
        if seed not in todo:
            log(f"seed {seed}: already finished in {seed_folder(out, seed).path}, kept")
    folders = [seed_folder(out, seed) for seed in todo]
    resumes = [(f.staging if force else f).checkpoint.exists() for f in folders]
    cfgs = [replace(cfg, seed=seed) for seed in todo]
    with made(Path(out)):  # a sweep refused before its first run leaves no folder
        if todo and pick_device(device).type == "cuda":
            fit_together(cfgs, [f.path for f in folders], device, data_dir=data_dir,
                         resume=resumes, force=force, log=log, data=data)  # fmt: skip
        elif todo:
            data = data or load_mnist(data_dir, log=log)
            for c, folder, resume in zip(cfgs, folders, resumes, strict=True):
                train = fit_fast if fast else fit
                train(c, folder.path, device, data_dir=data_dir, resume=resume, force=force,
                      log=log, data=data)  # fmt: skip
    return summarize_folder(out, max_epochs, log)


def finished_seeds(out: str | Path) -> list[int]:
    """The seeds of the finished runs in a sweep folder, in order."""
    seeds = [int(p.name[5:]) for p in Path(out).glob("seed-*") if p.name[5:].isdigit()]
    return sorted(s for s in seeds if seed_folder(out, s).is_finished())


def summarize_folder(
    out: str | Path, max_epochs: int = MAX_EPOCHS, log: Callable[[str], None] = print
) -> dict:
    """Summarise every finished run in ``out`` and write summary.json there."""
    seeds = finished_seeds(out)
    if not seeds:
        raise UserError(f"{out} holds no finished run to summarise")
    histories = [seed_folder(out, s).read_history() for s in seeds]
    settings = [{**saved_config(h.config), "seed": None} for h in histories]
    odd = [h.seed for h, c in zip(histories, settings, strict=True) if c != settings[0]]
    if odd:
        raise UserError(
            f"{out}: seed {', '.join(map(str, odd))} was made with other settings than seed "
            f"{histories[0].seed}: move it to a folder of its own"
        )
    log(f"summary of {out}: seeds {', '.join(map(str, seeds))}")
    summary = summarize(histories, max_epochs)
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
    runs = [
        {
            "seed": h.seed,
            "last": h.accs()[-LAST_N:],
            "min_last": min(h.accs()[-LAST_N:]),
            "final": h.accs()[-1],
            "passed": not target_misses(h, max_epochs),
            "seconds": sum(e.seconds / (e.together or 1) for e in h.epochs),  # its share
        }
        for h in histories
    ]
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
    """The summary.json of a sweep folder; one that is not a sweep's summary is one line."""
    path = Path(out) / SUMMARY
    summary = read_json(path)
    keys = ("model", "params", "epochs", "runs", "final", "min_last", "worst_min_last", "passed",
            "total", "seconds_per_run", "hardware", "device", "precision", "torch")  # fmt: skip
    if not (isinstance(summary, dict) and all(k in summary for k in keys)
            and isinstance(summary["runs"], list)
            and all(isinstance(r, dict) and "seed" in r for r in summary["runs"])):  # fmt: skip
        raise UserError(f"{path} is not a sweep's summary: delete it, and run the same seeds "
                        "command again to write it")  # fmt: skip
    return summary


@contextmanager
def fields_of(out: str | Path) -> Iterator[None]:
    """Reading a summary's fields: one of the wrong type or missing is one line naming the file."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(
            f"{Path(out) / SUMMARY} is not a sweep's summary ({type(exc).__name__}: {exc}): "
            "delete it, and run the same seeds command again to write it"
        ) from None


def load_sweep(out: str | Path) -> tuple[dict, list[History]]:
    """A sweep's summary and the history of each of its seeds, for tables and figures."""
    summary = load_summary(out)
    return summary, [seed_folder(out, r["seed"]).read_history() for r in summary["runs"]]
