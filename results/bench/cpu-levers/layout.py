"""Channels-last against PyTorch's default layout for the library's CPU epoch (net's recipe,
sharded step), in the precision this process resolves to; alternating, medians.

    MNIST_CPU_FP32=1 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 \
        python results/bench/cpu-levers/layout.py    # an AVX2-only CPU's fp32

(``python`` of the project's environment, where `mnist_lib` is installed.)
"""

import statistics
import time

import torch

from mnist_lib.config import recipe
from mnist_lib.data import DeviceData, load_mnist
from mnist_lib.device import autocast_dtype, cpu_kind, pick_device
from mnist_lib.run import new_member
from mnist_lib.speed import make_step
from mnist_lib.train import evaluate, shards_per_step, train_one_epoch

cfg = recipe("net", epochs=3)
dev = pick_device("cpu")
data = DeviceData.from_mnist(load_mnist(None), dev)
amp = autocast_dtype(dev, cfg.precision)
print(cpu_kind(), amp, "net", torch.get_num_threads(), "threads", flush=True)
times: dict[str, list[tuple[float, float]]] = {}
for _ in range(3):
    for layout in (torch.channels_last, torch.contiguous_format):
        m = new_member(cfg, dev, len(data.train_y), layout)
        step = make_step(m.model, shards_per_step(cfg, len(data.train_y)), amp)
        t0 = time.perf_counter()
        train_one_epoch(m.model, data, m.optimizer, m.scheduler, cfg, m.generator, step, m.ema)
        t1 = time.perf_counter()
        evaluate(m.eval_model, data.eval_x, data.eval_y, cfg.eval_batch_size, amp)
        t2 = time.perf_counter()
        times.setdefault(str(layout), []).append((t1 - t0, t2 - t1))
        print(layout, f"train {t1 - t0:.2f} eval {t2 - t1:.2f}", flush=True)
for name, pairs in times.items():
    train = statistics.median(a for a, _ in pairs)
    test = statistics.median(b for _, b in pairs)
    print(name, f"median train {train:.2f} eval {test:.2f}")
