"""Side-by-side speed: two ways of training `net`'s recipe in one process, alternating, medians
(a machine's pace drifts from minute to minute; both ways see the same drift).

``compare="usual"``: (a) the usual tutorial pipeline, torchvision's `datasets.MNIST` with
per-image PIL transforms through a `DataLoader`, the default memory layout, fp32, a loss
`.item()` every step, test batches of 1,000; (b) the course's loop, as `fit` runs it.
``compare="fast"``: (a) the course's loop; (b) the lab's fast path (`fit_fast`: ghost batches
on parallel threads on a CPU, the step as one CUDA graph on a GPU). Both ways train the same
steps and score the test set every epoch. On a GPU it also times seeds trained together
against the same seeds one by one, with their peak memory.
"""

import gc
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F

from ...config import TrainConfig, UserError, recipe
from ...data import MEAN, STD, DeviceData, ensure_mnist, load_mnist
from ...device import autocast_dtype, hardware, pick_device, precision_name
from ...files import write_json
from ...fit import Run
from ...train import evaluate, steps_per_epoch, train_one_epoch
from ..speed.graphed import GraphedTrainer
from ..speed.shards import ShardedStep
from ..speed.stacked import StackedTrainer


class PeakMemory:
    """Peak memory while the block runs: the CUDA allocator's peak, or the process's resident
    memory sampled every 20 ms."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak, self.stop = device, 0, threading.Event()

    def sample(self) -> None:
        proc = psutil.Process()
        while not self.stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            self.thread = threading.Thread(target=self.sample, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self.stop.set()
            self.thread.join()


def cpu_kind() -> str:
    """What kind of x86 CPU this is for training: native bf16 (AVX-512 BF16 or AMX) or not, and
    whether oneDNN and ATen were limited to AVX2 (to measure what an AVX2-only CPU does)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    flags = next((line for line in lines if line.startswith("flags")), "").split()
    kinds = {"avx512_bf16": "AVX-512 with native bf16", "amx_bf16": "AVX-512 with native bf16",
             "avx512f": "AVX-512", "avx2": "AVX2"}  # fmt: skip
    kind = next((name for flag, name in kinds.items() if flag in flags), platform.machine())
    limits = [
        f"{name}={os.environ[name]}"
        for name in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
        if os.environ.get(name, "").upper().startswith("AVX2")
    ]
    return kind + (f", limited to AVX2 ({', '.join(limits)})" if limits else "")


def usual_epochs(cfg: TrainConfig, device: torch.device, data_dir: Path) -> list[float]:
    """The tutorial way, seconds per epoch (train + test)."""
    from torchvision import datasets, transforms

    train_tf = transforms.Compose([
        transforms.RandomAffine(cfg.rotate, translate=(cfg.shift / 28, cfg.shift / 28)),
        transforms.ToTensor(),
        transforms.Normalize((MEAN,), (STD,)),
    ])  # fmt: skip
    test_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    cuda = device.type == "cuda"
    loader_args = {"num_workers": 2, "pin_memory": True} if cuda else {}  # as tutorials do
    if cuda:  # free the other way's CUDA graphs now: a forked worker that frees them crashes
        gc.collect()
    train_set = datasets.MNIST(str(data_dir), train=True, transform=train_tf)
    test_set = datasets.MNIST(str(data_dir), train=False, transform=test_tf)
    train_loader = torch.utils.data.DataLoader(
        train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True, **loader_args
    )
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000, **loader_args)
    run = Run.new(cfg, device, None, torch.contiguous_format)
    times = []
    for _ in range(cfg.epochs):
        start = time.perf_counter()
        run.model.train()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            run.optimizer.zero_grad()
            loss = F.nll_loss(run.model(x), y)
            loss.backward()
            run.optimizer.step()
            run.scheduler.step()
            if run.ema:
                run.ema.update()
            _ = loss.item()  # what a progress bar's running loss costs
        run.eval_model.eval()
        with torch.no_grad():
            for x, y in test_loader:
                x, y = x.to(device), y.to(device)
                _ = F.nll_loss(run.eval_model(x), y, reduction="sum").item()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def loop_epochs(cfg: TrainConfig, device: torch.device, data: DeviceData, fast: bool) -> list:
    """Seconds per epoch (train + test) of the course's loop, or with ``fast`` of `fit_fast`'s
    path; on a GPU the fast path is `together_epochs` of one seed."""
    if fast and device.type == "cuda":
        return together_epochs(cfg, device, data, [cfg.seed])
    amp = autocast_dtype(device, cfg.precision)
    run = Run.new(cfg, device, amp)
    step = {"step": ShardedStep()} if fast else {}
    times = []
    for _ in range(cfg.epochs):
        start = time.perf_counter()
        train_one_epoch(run.model, data, run.optimizer, run.scheduler, cfg, run.generator,
                        run.ema, amp, **step)  # fmt: skip
        evaluate(run.eval_model, data.eval_x, data.eval_y, cfg.eval_batch_size, amp)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def together_epochs(cfg: TrainConfig, device: torch.device, data: DeviceData, seeds: list[int]):
    """Seconds per epoch (train + test) of ``seeds`` trained in one step."""
    amp = autocast_dtype(device, cfg.precision)
    runs = [Run.new(replace(cfg, seed=s), device, amp) for s in seeds]
    trainer = (GraphedTrainer if device.type == "cuda" else StackedTrainer)(runs, data, cfg, amp)
    times = []
    for _ in range(cfg.epochs):
        start = time.perf_counter()
        trainer.train_epoch()
        trainer.evaluate()  # reads the scores: waits for the device
        times.append(time.perf_counter() - start)
    return times


def timed(ways: dict[str, Callable[[], list[float]]], repeats: int, device, log) -> dict:
    """Each way ``repeats`` times, alternating: its seconds per epoch, median and peak memory."""
    results = {name: {"times": [], "peak": 0} for name in ways}
    for round_ in range(repeats):
        for name, way in ways.items():
            with PeakMemory(device) as mem:
                times = way()
            results[name]["times"] += times
            results[name]["peak"] = max(results[name]["peak"], mem.peak)
            log(f"round {round_ + 1} {name}: " + ", ".join(f"{t:.2f}" for t in times) + " s")
    for r in results.values():
        r["median"] = statistics.median(r["times"])
    return results


def run_bench(
    model: str = "net",
    epochs: int = 2,
    device: str = "auto",
    repeats: int = 1,
    data_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    out: str | Path | None = None,
    together: int = 5,
    compare: str = "usual",
) -> dict:
    """Time the two ways of ``compare`` (see the module docstring); print the figures and return
    them (also written to ``out`` as JSON, if given)."""
    if repeats < 1 or together < 1:
        raise UserError(f"repeats and together must be at least 1, got {repeats}, {together}")
    dev = pick_device(device)
    cfg = recipe(model, epochs=epochs)
    raw = ensure_mnist(data_dir, log=log)
    data = DeviceData.from_mnist(load_mnist(data_dir, log=log), dev)
    amp = autocast_dtype(dev, cfg.precision)
    log(
        f"bench {compare}: {model}, batch {cfg.batch_size}, {cfg.shards} ghost batches, "
        f"{epochs} epochs x {repeats} rounds each way, {dev} ({hardware(dev)}), "
        f"{precision_name(amp)}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    ways = {
        "usual": {"usual": lambda: usual_epochs(cfg, dev, raw.parent.parent),
                  "loop": lambda: loop_epochs(cfg, dev, data, fast=False)},
        "fast": {"loop": lambda: loop_epochs(cfg, dev, data, fast=False),
                 "fast": lambda: loop_epochs(cfg, dev, data, fast=True)},
    }[compare]  # fmt: skip
    results = timed(ways, repeats, dev, log)
    images = steps_per_epoch(cfg.train_images, cfg.batch_size) * cfg.batch_size
    for name, r in results.items():
        r["images_per_s"] = images / r["median"]
        log(f"{name}: median {r['median']:.2f} s/epoch, {r['images_per_s']:,.0f} images/s, "
            f"peak memory {r['peak'] / 2**20:,.0f} MiB")  # fmt: skip
    first, second = results
    ratio = results[first]["median"] / results[second]["median"]
    log(f"{first} / {second}: {ratio:.2f}x")
    report = {
        "model": model, "device": str(dev), "hardware": hardware(dev),
        "cpu_kind": cpu_kind() if dev.type == "cpu" else None, "precision": precision_name(amp),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "epochs": epochs,
        "repeats": repeats, "compare": compare, "ways": [first, second], "ratio": ratio,
        **results,
    }  # fmt: skip
    if dev.type == "cuda" and together > 1:
        seeds = list(range(together))
        report["seeds"] = timed(
            {"one_by_one": lambda: [sum(e) for e in zip(*[together_epochs(cfg, dev, data, [s])
                                                         for s in seeds], strict=True)],
             "together": lambda: together_epochs(cfg, dev, data, seeds)},
            repeats, dev, log,
        )  # fmt: skip
    if out:
        write_json(out, report)
    return report


def bench_table(report: dict) -> str:
    """A saved benchmark as a markdown table: per-epoch times, median, throughput, memory, and on
    a GPU the seeds' rows (seconds per epoch of all of them)."""
    rows = [
        "| way | seconds per epoch, in the order run | median | images/s | peak memory |",
        "|---|---|---:|---:|---:|",
    ]
    for name in report.get("ways", ["usual", "library"]):  # files made before "ways" existed
        r = report[name]
        times = ", ".join(f"{t:.1f}" for t in r["times"])
        rows.append(
            f"| {name} | {times} | {r['median']:.1f} s | {r['images_per_s']:,.0f} "
            f"| {r['peak'] / 2**20:,.0f} MiB |"
        )
    for name, r in report.get("seeds", {}).items():
        if isinstance(r, dict) and "times" in r:
            times = ", ".join(f"{t:.2f}" for t in r["times"])
            peak = f"{r['peak'] / 2**20:,.0f} MiB" if "peak" in r else ""
            rows.append(
                f"| seeds: {name.replace('_', ' ')} | {times} | {r['median']:.2f} s | | {peak} |"
            )
    return "\n".join(rows)
