"""Issue 17: one pass over the BatchNorm shards, torch.compile, side by side (ran at the commit that
added this file, with ShardBatchNorm and the one_pass/compiled options; both since removed).
Variants: the shard loop (as committed) or one pass (ShardBatchNorm); eager or torch.compile'd."""

import os
import statistics
import sys
import time
from dataclasses import replace

import torch
from torch.profiler import ProfilerActivity, profile

from mnist_lib.config import recipe
from mnist_lib.data import DeviceData, load_mnist
from mnist_lib.run import new_member
from mnist_lib.speed import StackedTrainer

dev = torch.device(os.environ.get("DEV", "cuda"))
limit = int(os.environ.get("LIMIT", "0"))
EPOCHS = int(os.environ.get("EPOCHS", "3"))
dd = DeviceData.from_mnist(load_mnist(log=lambda m: None), dev, limit, limit // 4)
cfg = recipe("net", limit_train=limit, limit_test=limit // 4)
amp = torch.bfloat16 if dev.type == "cuda" else None
n = len(dd.train_y)
rows = []


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


def make(runs, **kw):
    members = [new_member(replace(cfg, seed=s), dev, n) for s in range(runs)]
    return StackedTrainer(members, dd, cfg, amp, cfg.shards, **kw)


def measure(label, runs, **kw):
    t0 = time.perf_counter()
    t = make(runs, **kw)
    build = time.perf_counter() - t0
    prep = []
    original = t.prepare_epoch

    def timed():
        a = time.perf_counter()
        original()
        prep.append(time.perf_counter() - a)

    t.prepare_epoch = timed
    train, ev, accs = [], [], []
    for _ in range(EPOCHS):
        a = time.perf_counter()
        stats = t.train_epoch()
        b = time.perf_counter()
        scores = t.evaluate()
        c = time.perf_counter()
        train.append(b - a)
        ev.append(c - b)
        accs.append(round(scores[0][1], 2))
    later = lambda xs: statistics.median(xs[1:]) if len(xs) > 1 else xs[0]  # noqa: E731
    row = (
        f"{label:28s} runs {runs}: build {build:5.2f} s | epoch 1 train {train[0]:6.2f} eval "
        f"{ev[0]:5.2f} | later: train {later(train):.3f} eval {later(ev):.3f} prep "
        f"{later(prep):.3f} = {later(train) + later(ev):.3f} s/epoch | loss "
        f"{stats[0]['train_loss']:.4f} acc {accs}"
    )
    print(row, flush=True)
    rows.append(row)
    return t


def kernels(label, runs, **kw):
    t = make(runs, graphs=False, **kw)
    t.prepare_epoch()
    warm = min(4, t.steps - 5)
    for _ in range(warm):
        t.train_step()
    sync()
    acts = [ProfilerActivity.CUDA] if dev.type == "cuda" else [ProfilerActivity.CPU]
    with profile(activities=acts) as prof:
        for _ in range(5):
            t.train_step()
        sync()
    kind = torch.autograd.DeviceType.CUDA if dev.type == "cuda" else torch.autograd.DeviceType.CPU
    ev = [e for e in prof.events() if e.device_type == kind]
    total = sum(e.device_time if dev.type == "cuda" else 0 for e in ev) / 5
    print(f"== kernels {label} runs {runs}: {len(ev) / 5:.0f} per step, {total:.0f} us busy")
    sort = "cuda_time_total" if dev.type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=12, max_name_column_width=60))


plan = [
    ("loop (today)", 1, {}),
    ("one pass", 1, {"one_pass": True}),
    ("loop compiled", 1, {"compiled": True}),
    ("one pass compiled", 1, {"one_pass": True, "compiled": True}),
    ("loop (today)", 5, {}),
    ("one pass", 5, {"one_pass": True}),
    ("one pass compiled", 5, {"one_pass": True, "compiled": True}),
]
only = sys.argv[1:]
for i, (label, runs, kw) in enumerate(plan):
    if only and str(i) not in only:
        continue
    try:
        measure(label, runs, **kw)
    except Exception as e:  # noqa: BLE001
        print(f"{label} runs {runs}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
profiled = [("loop (today)", 1, {}), ("one pass compiled", 1, {"one_pass": True, "compiled": True})]
for label, runs, kw in profiled:
    try:
        kernels(label, runs, **kw)
    except Exception as e:  # noqa: BLE001
        print(f"kernels {label}: FAILED {type(e).__name__}: {str(e)[:300]}", flush=True)
print("== summary")
print("\n".join(rows))
