"""torch.compile on the CPU: a training step of net's network (plain Nesterov SGD, not its whole
recipe) on one batch of 256, channels-last, in the precision this process resolves to, three
ways in alternating blocks of 40 steps: eager on the whole batch, compiled on the whole batch, and
the library's step (two BatchNorm shards on two threads, eager); the compile time too. (Run it
with MNIST_CPU_FP32=1 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 for an AVX2-only CPU's
fp32, and with TORCHINDUCTOR_CACHE_DIR set to an empty folder to time a first compile.)"""

import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

from mnist_lib.device import autocast, autocast_dtype, cpu_kind, pick_device
from mnist_lib.model import build_model
from mnist_lib.speed import ShardedStep

dev = pick_device("cpu")
amp = autocast_dtype(dev, "auto")
print(cpu_kind(), amp, torch.get_num_threads(), "threads", flush=True)
x = torch.randn(256, 1, 28, 28).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (256,))


def make() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = build_model("net").to(memory_format=torch.channels_last)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)


def whole_batch(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    optimizer.zero_grad(set_to_none=True)
    with autocast(dev, amp):
        out = model(x)
    F.nll_loss(out.float(), y).backward()
    optimizer.step()


def sharded(step: ShardedStep, optimizer: torch.optim.Optimizer) -> None:
    optimizer.zero_grad(set_to_none=True)
    step(x, y)
    optimizer.step()


eager = make()
compiled_model, compiled_opt = make()
compiled = (torch.compile(compiled_model), compiled_opt)
shards_model, shards_opt = make()
shards = (ShardedStep(shards_model, 2, amp), shards_opt)
t0 = time.perf_counter()
whole_batch(*compiled)
whole_batch(*compiled)
print(f"compile + 2 steps: {time.perf_counter() - t0:.1f} s", flush=True)
ways = {
    "eager, whole batch": (whole_batch, eager, contextlib.nullcontext()),
    "compiled, whole batch": (whole_batch, compiled, contextlib.nullcontext()),
    "eager, two shards (the library's)": (sharded, shards, shards[0]),
}
ms: dict[str, list[float]] = {name: [] for name in ways}
for _ in range(4):
    for name, (step, pair, context) in ways.items():
        with context:
            t0 = time.perf_counter()
            for _ in range(40):
                step(*pair)
            ms[name].append((time.perf_counter() - t0) / 40 * 1000)
        print(name, f"{ms[name][-1]:.1f} ms/step", flush=True)
for name, values in ms.items():
    print(name, f"median {statistics.median(values):.1f} ms/step")
