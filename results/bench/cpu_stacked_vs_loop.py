"""One `net` epoch (training and test pass) on this CPU: StackedTrainer (one run, its shards one
after the other) against the loop with shards (`ShardedStep`), alternating. Run on the Intel Xeon
(AVX-512, bf16), 2026-11-26:
    round 1: loop with shards 10.0 s, StackedTrainer 20.4 s torch.bfloat16
    round 2: loop with shards 9.9 s, StackedTrainer 18.7 s torch.bfloat16
"""

import time

import torch

from mnist_lib.config import recipe
from mnist_lib.data import DeviceData, load_mnist
from mnist_lib.device import autocast_dtype
from mnist_lib.run import new_member
from mnist_lib.speed import StackedTrainer, make_step
from mnist_lib.train import evaluate, train_one_epoch

cpu = torch.device("cpu")
cfg = recipe("net")
amp = autocast_dtype(cpu, cfg.precision)
dd = DeviceData.from_mnist(load_mnist(log=lambda m: None), cpu)
a, b = new_member(cfg, cpu, 60000), new_member(cfg, cpu, 60000)
step = make_step(a.model, 2, amp)
t = StackedTrainer([b], dd, cfg, amp, 2)
for r in range(2):
    t0 = time.perf_counter()
    train_one_epoch(a.model, dd, a.optimizer, a.scheduler, cfg, a.generator, step, a.ema)
    evaluate(a.ema.module, dd.eval_x, dd.eval_y, 500, amp)
    t1 = time.perf_counter()
    t.train_epoch()
    t.evaluate()
    t2 = time.perf_counter()
    print(
        f"round {r + 1}: loop with shards {t1 - t0:.1f} s, StackedTrainer {t2 - t1:.1f} s",
        amp,
        flush=True,
    )
