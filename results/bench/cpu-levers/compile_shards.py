"""torch.compile inside the library's sharded CPU step: net's recipe, one epoch with each
replica compiled (Inductor's C++ kernels on one thread each, as the shards' workers run) against
eager, alternating; the compile time too."""

import statistics
import time

import torch
import torch._inductor.config as inductor_config

from mnist_lib.config import recipe
from mnist_lib.data import DeviceData, load_mnist
from mnist_lib.device import autocast_dtype, cpu_kind, pick_device
from mnist_lib.run import new_member
from mnist_lib.speed import make_step
from mnist_lib.train import evaluate, shards_per_step, train_one_epoch

inductor_config.cpp.threads = 1
cfg = recipe("net", epochs=3)
dev = pick_device("cpu")
data = DeviceData.from_mnist(load_mnist(None), dev)
amp = autocast_dtype(dev, cfg.precision)
print(cpu_kind(), amp, "net", torch.get_num_threads(), "threads", flush=True)


def setup(compiled: bool):
    m = new_member(cfg, dev, len(data.train_y))
    step = make_step(m.model, shards_per_step(cfg, len(data.train_y)), amp)
    if compiled:
        t0 = time.perf_counter()
        step.replicas = [torch.compile(r) for r in step.replicas]
        x, y = data.train_x[: cfg.batch_size], data.train_y[: cfg.batch_size]
        step(x, y)  # compiles, one replica after the other, in this thread
        step(x, y)
        print(f"compile: {time.perf_counter() - t0:.1f} s", flush=True)
    return m, step


times: dict[str, list[float]] = {"eager": [], "compiled": []}
for _ in range(2):
    for name in times:
        m, step = setup(name == "compiled")
        t0 = time.perf_counter()
        train_one_epoch(m.model, data, m.optimizer, m.scheduler, cfg, m.generator, step, m.ema)
        seconds = time.perf_counter() - t0
        _, acc = evaluate(m.eval_model, data.eval_x, data.eval_y, cfg.eval_batch_size, amp)
        times[name].append(seconds)
        print(name, f"train {seconds:.2f} s, test acc {acc:.2f}", flush=True)
for name, values in times.items():
    print(name, f"median {statistics.median(values):.2f} s/epoch")
