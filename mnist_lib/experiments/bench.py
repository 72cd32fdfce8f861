"""Side-by-side speed: the usual tutorial pipeline vs this library's training path.

Both train the same model with the same recipe (optimizer, schedule, EMA, augmentation ranges,
batch size, steps per epoch) in one process, alternating, and evaluate on the test set every epoch.

(a) usual:   torchvision `datasets.MNIST` + per-sample PIL transforms (RandomAffine, ToTensor,
             Normalize) through a `DataLoader`, fp32, a loss `.item()` every step, test batches
             of 1000.
(b) library: the data as one normalised tensor on the device, batch augmentation, bf16 autocast
             where the hardware has it natively, channels-last on the CPU, the batch split into
             shards that run in parallel on the CPU's cores (mnist_lib.speed), a fused EMA update,
             sums read once per epoch, test batches of 500. On a GPU: the whole step and the test
             pass as CUDA graphs (`mnist_lib.speed.StackedTrainer`).

On a GPU it also times seeds: ``together`` seeds trained in one step against the same seeds
one after the other, each way with its peak GPU memory.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F

from ..config import TrainConfig, recipe
from ..data import MEAN, STD, TRAIN_SIZE, DeviceData, ensure_mnist, load_mnist
from ..device import autocast_dtype, cpu_kind, hardware, pick_device, precision_name
from ..errors import UserError
from ..files import write_json
from ..run import new_member
from ..speed import Member, StackedTrainer, make_step, trains_together, worker_threads
from ..train import (
    evaluate,
    shards_per_step,
    steps_per_epoch,
    train_one_epoch,
)


class PeakMemory:
    """Peak memory while the block runs: the CUDA allocator's peak, or the process RSS sampled
    every 20 ms."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak, self._stop = device, 0, threading.Event()

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()


def usual_setup(cfg: TrainConfig, device: torch.device) -> Member:
    """Model, optimizer, schedule and EMA as the library makes them (`mnist_lib.run.new_member`),
    but in PyTorch's default memory layout."""
    return new_member(cfg, device, TRAIN_SIZE, torch.contiguous_format)


def usual_epochs(cfg: TrainConfig, device: torch.device, data_dir: Path) -> list[float]:
    """The tutorial way, seconds per epoch (train + test)."""
    from torchvision import datasets, transforms

    train_tf = transforms.Compose(
        [
            # The library's zoom range; torchvision draws the factor evenly, the library its
            # inverse: the same work per image, which is all a timing baseline needs.
            transforms.RandomAffine(
                cfg.rotate,
                translate=(cfg.shift / 28, cfg.shift / 28),
                scale=(1 / (1 + cfg.scale), 1 / (1 - cfg.scale)) if cfg.scale else None,
            ),
            transforms.ToTensor(),
            transforms.Normalize((MEAN,), (STD,)),
        ]
    )
    test_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    cuda = device.type == "cuda"
    loader_args = (
        {"num_workers": 2, "pin_memory": True} if cuda else {}
    )  # as the usual tutorials do
    if cuda:  # free the other way's CUDA graphs now: a forked worker that frees them itself crashes
        gc.collect()
    train_set = datasets.MNIST(str(data_dir), train=True, transform=train_tf)
    test_set = datasets.MNIST(str(data_dir), train=False, transform=test_tf)
    train_loader = torch.utils.data.DataLoader(
        train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True, **loader_args
    )
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000, **loader_args)
    m = usual_setup(cfg, device)
    model, optimizer, scheduler, ema = m.model, m.optimizer, m.scheduler, m.ema
    eval_model = m.eval_model
    times = []
    for _ in range(cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if ema:
                ema.update()
            _ = loss.item()  # what a progress bar's running loss costs
        eval_model.eval()
        with torch.no_grad():
            for x, y in test_loader:
                x, y = x.to(device), y.to(device)
                _ = F.nll_loss(eval_model(x), y, reduction="sum").item()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def library_epochs(cfg: TrainConfig, device: torch.device, data: DeviceData) -> list[float]:
    """This library's path, seconds per epoch (train + test)."""
    if trains_together(device):
        return together_epochs(cfg, device, data, [cfg.seed])
    amp = autocast_dtype(device, cfg.precision)
    m = new_member(cfg, device, len(data.train_y))
    step = make_step(m.model, shards_per_step(cfg, len(data.train_y)), amp, cfg.label_smoothing)
    times = []
    for _ in range(cfg.epochs):
        t0 = time.perf_counter()
        train_one_epoch(m.model, data, m.optimizer, m.scheduler, cfg, m.generator, step, m.ema)
        evaluate(m.eval_model, data.eval_x, data.eval_y, cfg.eval_batch_size, amp)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def together_epochs(
    cfg: TrainConfig, device: torch.device, data: DeviceData, seeds: list[int]
) -> list[float]:
    """Seconds per epoch (train + test) of ``seeds`` trained in one step (`StackedTrainer`)."""
    amp = autocast_dtype(device, cfg.precision)
    members = [new_member(replace(cfg, seed=s), device, len(data.train_y)) for s in seeds]
    trainer = StackedTrainer(members, data, cfg, amp, shards_per_step(cfg, len(data.train_y)))
    times = []
    for _ in range(cfg.epochs):
        t0 = time.perf_counter()
        trainer.train_epoch()
        trainer.evaluate()  # reads the scores: waits for the device
        times.append(time.perf_counter() - t0)
    return times


def seeds_bench(
    cfg: TrainConfig, device: torch.device, data: DeviceData, together: int, repeats: int,
    log: Callable[[str], None],
) -> dict:  # fmt: skip
    """``together`` seeds in one step against the same seeds one after the other, alternating
    ``repeats`` times; seconds per epoch of all seeds, medians, and peak memory."""
    seeds = list(range(together))
    results: dict[str, dict] = {
        "one_by_one": {"times": [], "peak": 0},
        "together": {"times": [], "peak": 0},
    }
    for round_ in range(repeats):
        with PeakMemory(device) as mem:
            runs = [together_epochs(cfg, device, data, [s]) for s in seeds]
        times = [sum(epoch) for epoch in zip(*runs, strict=True)]  # every seed's epoch i
        results["one_by_one"]["times"] += times
        results["one_by_one"]["peak"] = max(results["one_by_one"]["peak"], mem.peak)
        results.setdefault("one", {"times": []})["times"] += runs[0]
        with PeakMemory(device) as mem:
            times_together = together_epochs(cfg, device, data, seeds)
        results["together"]["times"] += times_together
        results["together"]["peak"] = max(results["together"]["peak"], mem.peak)
        log(
            f"round {round_ + 1} seeds: {together} one by one "
            + ", ".join(f"{t:.2f}" for t in times)
            + " s/epoch; together "
            + ", ".join(f"{t:.2f}" for t in times_together)
            + " s/epoch"
        )
    for r in results.values():
        r["median"] = statistics.median(r["times"])
    one, by_one, both = results["one"], results["one_by_one"], results["together"]
    log(
        f"seeds: one seed {one['median']:.2f} s/epoch; {together} one by one "
        f"{by_one['median']:.2f} s/epoch (peak {by_one['peak'] / 2**20:,.0f} MiB); {together} "
        f"together {both['median']:.2f} s/epoch (peak {both['peak'] / 2**20:,.0f} MiB) = "
        f"{both['median'] / one['median']:.2f}x one seed"
    )
    return {"seeds": together, **results, "together_vs_one": both["median"] / one["median"]}


def run_bench(
    model: str = "net",
    epochs: int = 2,
    device: str = "auto",
    repeats: int = 1,
    data_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    out: str | Path | None = None,
    together: int = 5,
) -> dict:
    """Alternate (a) and (b) ``repeats`` times, ``epochs`` epochs each, and on a GPU time
    ``together`` seeds (see `seeds_bench`); print the figures, and return them (also written to
    ``out`` as JSON, if given)."""
    if repeats < 1:
        raise UserError(f"repeats must be at least 1, got {repeats}")
    if together < 1:
        raise UserError(f"together must be at least 1, got {together}")
    dev = pick_device(device)
    cfg = recipe(model, epochs=epochs)
    raw = ensure_mnist(data_dir, log=log)
    data = DeviceData.from_mnist(load_mnist(data_dir, log=log), dev)
    amp = autocast_dtype(dev, cfg.precision)
    steps = steps_per_epoch(TRAIN_SIZE, cfg.batch_size)
    workers = worker_threads(dev, cfg.shards)
    shards = (
        f"{cfg.shards} shards on {workers} thread(s), "
        f"{torch.get_num_threads() // workers} intra-op thread(s) each"
    )
    log(
        f"bench: {model}, batch {cfg.batch_size}, {steps} steps/epoch, "
        f"{epochs} epochs x {repeats} rounds each way, device {dev} ({hardware(dev)}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"library: {precision_name(amp)}, {shards}"
    )
    results: dict[str, dict] = {
        "usual": {"times": [], "peak": 0},
        "library": {"times": [], "peak": 0},
    }
    for round_ in range(repeats):
        for name, run in (
            ("usual", lambda: usual_epochs(cfg, dev, raw.parent.parent)),
            ("library", lambda: library_epochs(cfg, dev, data)),
        ):
            with PeakMemory(dev) as mem:
                times = run()
            results[name]["times"] += times
            results[name]["peak"] = max(results[name]["peak"], mem.peak)
            log(
                f"round {round_ + 1} {name:>7}: "
                + ", ".join(f"{t:.1f}" for t in times)
                + " s/epoch"
            )
    train_images = steps * cfg.batch_size
    for name, r in results.items():
        r["median"] = statistics.median(r["times"])
        r["images_per_s"] = train_images / r["median"]
        log(
            f"{name:>7}: median {r['median']:.1f} s/epoch, {r['images_per_s']:,.0f} images/s "
            f"(incl. test), peak memory {r['peak'] / 2**20:,.0f} MiB"
        )
    ratio = results["usual"]["median"] / results["library"]["median"]
    log(f"speed-up (usual / library): {ratio:.2f}x on {dev} ({torch.__version__})")
    report = {
        "model": model,
        "device": str(dev),
        "hardware": hardware(dev),
        "cpu_kind": cpu_kind() if dev.type == "cpu" else None,
        "precision": precision_name(amp),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "epochs": epochs,
        "repeats": repeats,
        "ratio": ratio,
        **results,
    }
    if trains_together(dev) and together > 1:
        report["seeds"] = seeds_bench(cfg, dev, data, together, repeats, log)
    if out:
        write_json(out, report)
    return report


def bench_table(report: dict) -> str:
    """A saved benchmark as a markdown table: per-epoch times, median, throughput, memory."""
    rows = [
        "| pipeline | seconds per epoch, in the order run | median | images/s | peak memory |",
        "|---|---|---:|---:|---:|",
    ]
    for name in ("usual", "library"):
        r = report[name]
        times = ", ".join(f"{t:.1f}" for t in r["times"])
        rows.append(
            f"| {name} | {times} | {r['median']:.1f} s | {r['images_per_s']:,.0f} "
            f"| {r['peak'] / 2**20:,.0f} MiB |"
        )
    seeds = report.get("seeds")
    if seeds:
        n = seeds["seeds"]
        for name, label in (("one", "1 seed"), ("one_by_one", f"{n} seeds one by one"),
                            ("together", f"{n} seeds together")):  # fmt: skip
            r = seeds[name]
            times = ", ".join(f"{t:.2f}" for t in r["times"])
            peak = f"{r['peak'] / 2**20:,.0f} MiB" if "peak" in r else ""
            rows.append(f"| library, {label} | {times} | {r['median']:.2f} s | | {peak} |")
    return "\n".join(rows)
