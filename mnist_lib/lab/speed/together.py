"""The lab's ways to `fit`'s numbers at the speed of the hardware: several seeds of one recipe
trained together in one step (`StackedTrainer`, where a GPU has room for them), and one run
trained the fast way on either kind of device (`fit_fast`)."""

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from ...config import TrainConfig, changed_fields
from ...data import DeviceData, Mnist, load_mnist
from ...device import autocast_dtype, pick_device
from ...files import made
from ...fit import Run, claimed, fit, training_folder
from ...record import History, RunFolder
from .graphed import GraphedTrainer
from .shards import ShardedStep
from .stacked import StackedTrainer


def fit_together(
    cfgs: list[TrainConfig],
    run_dirs: list[str | Path],
    device: str = "auto",
    *,
    data_dir: str | Path | None = None,
    resume: list[bool] | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
    data: Mnist | None = None,
    graphs: bool | None = None,
) -> list[History]:
    """`fit` for runs that differ in their seed only, each in its own folder, trained together
    by `StackedTrainer` (``graphs``: record its step as a CUDA graph; by default on a GPU)."""
    for cfg in cfgs:
        cfg.validate()
    if any(changed_fields(asdict(cfgs[0]), replace(c, seed=cfgs[0].seed)) for c in cfgs[1:]):
        raise ValueError("runs trained together must differ in their seed only")
    dev, cfg = pick_device(device), cfgs[0]
    amp = autocast_dtype(dev, cfg.precision)
    homes = [RunFolder(d) for d in run_dirs]
    resumes = resume or [False] * len(cfgs)
    with contextlib.ExitStack() as held:
        for home in homes:
            held.enter_context(claimed(home, log))
        folders = [training_folder(*args, force) for args in zip(homes, cfgs, resumes, strict=True)]
        dd = DeviceData.from_mnist(
            data or load_mnist(data_dir, log=log), dev, cfg.limit_train, cfg.limit_test, cfg.val
        )
        for folder in folders:
            held.enter_context(made(folder.path))
        runs = [
            Run.new(c, dev, amp).place(f, h, r, log)
            for c, f, h, r in zip(cfgs, folders, homes, resumes, strict=True)
        ]
        done = sorted({len(run.history.epochs) for run in runs})  # resumed runs may differ
        for epochs in done:
            train_together(
                [r for r in runs if len(r.history.epochs) == epochs], dd, amp, log, graphs
            )
    return [run.history for run in runs]


def train_together(
    runs: list[Run], dd: DeviceData, amp, log: Callable[[str], None], graphs: bool | None
) -> None:
    """The remaining epochs of ``runs`` (all at the same epoch), checkpointed after each."""
    cfg = runs[0].cfg
    graphed = dd.train_x.device.type == "cuda" if graphs is None else graphs
    trainer = (GraphedTrainer if graphed else StackedTrainer)(runs, dd, cfg, amp)
    together = len(runs) if len(runs) > 1 else None
    log(
        f"training {cfg.model} ({runs[0].history.params:,} params) on {dd.train_x.device} "
        f"({runs[0].history.precision}), {len(dd.train_y):,} train / {len(dd.eval_y):,} "
        f"{dd.split} images, seeds {', '.join(str(r.cfg.seed) for r in runs)}, in one step"
    )
    for _ in range(len(runs[0].history.epochs), cfg.epochs):
        start = time.perf_counter()
        stats, scores = trainer.train_epoch(), trainer.evaluate()  # the scores wait for it
        seconds = time.perf_counter() - start
        trainer.store()
        for run, st, sc in zip(runs, stats, scores, strict=True):
            run.end_epoch(st, sc, seconds, dd.split, log, together)
    for run in runs:
        run.finish()


def fit_fast(cfg: TrainConfig, run_dir: str | Path, device: str = "auto", **options) -> History:
    """`fit` (the same options), the fast way: on a GPU the whole step as one CUDA graph, on a CPU
    the ghost batches on parallel threads (`ShardedStep`). The same computation as `fit`."""
    if pick_device(device).type == "cuda":
        resume = options.pop("resume", False)
        return fit_together([cfg], [run_dir], device, resume=[resume], **options)[0]
    return fit(cfg, run_dir, device, step=ShardedStep(), **options)
