"""torch.compile inside the library's sharded CPU step: net's recipe, one epoch with each
replica compiled (Inductor's C++ kernels on one thread each, as the shards' workers run) against
eager, alternating; the compile time, and how many graphs Dynamo compiled (a recompile shows as
more than one per replica).

    python results/bench/cpu-levers/compile_shards.py [WARM_UP_THREADS [cpp_wrapper]]

The warm-up steps that compile run in this thread, one replica after the other, with
WARM_UP_THREADS intra-op threads (default 1, the count each worker has during the epoch; 2 shows
what a different count costs). `cpp_wrapper` turns on Inductor's C++ wrapper, which releases the
GIL while a compiled graph runs; its default Python wrapper holds it (pytorch/pytorch#163061), so
the two shards' threads cannot overlap."""

import statistics
import sys
import time

import torch
import torch._inductor.config as inductor_config
from torch._dynamo.utils import counters

from mnist_lib.config import recipe
from mnist_lib.data import DeviceData, load_mnist
from mnist_lib.device import autocast_dtype, cpu_kind, pick_device
from mnist_lib.run import new_member
from mnist_lib.speed import make_step
from mnist_lib.train import evaluate, shards_per_step, train_one_epoch

inductor_config.cpp.threads = 1
warm_up_threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
inductor_config.cpp_wrapper = sys.argv[2:] == ["cpp_wrapper"]
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
        threads = torch.get_num_threads()
        torch.set_num_threads(warm_up_threads)
        step(x, y)  # compiles, one replica after the other, in this thread
        step(x, y)
        torch.set_num_threads(threads)
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
        graphs = counters["stats"]["unique_graphs"]
        print(name, f"train {seconds:.2f} s, acc {acc:.2f}, graphs so far {graphs}", flush=True)
for name, values in times.items():
    print(name, f"median {statistics.median(values):.2f} s/epoch")
