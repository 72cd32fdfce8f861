"""torch.compile on the CPU: net's training step on one whole batch of 256 (no shards),
channels-last, in the precision this process resolves to; eager against compiled, alternating
blocks of 40 steps; the compile time too. (Run it with MNIST_CPU_FP32=1
ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 for an AVX2-only CPU's fp32.)"""

import statistics
import time

import torch
import torch.nn.functional as F

from mnist_lib.device import autocast, autocast_dtype, cpu_kind, pick_device
from mnist_lib.model import build_model

dev = pick_device("cpu")
amp = autocast_dtype(dev, "auto")
print(cpu_kind(), amp, torch.get_num_threads(), "threads", flush=True)
x = torch.randn(256, 1, 28, 28).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (256,))


def make() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = build_model("net").to(memory_format=torch.channels_last)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)


def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    optimizer.zero_grad(set_to_none=True)
    with autocast(dev, amp):
        out = model(x)
    F.nll_loss(out.float(), y).backward()
    optimizer.step()


eager = make()
compiled_model, compiled_opt = make()
compiled = (torch.compile(compiled_model), compiled_opt)
t0 = time.perf_counter()
step(*compiled)
step(*compiled)
print(f"compile + 2 steps: {time.perf_counter() - t0:.1f} s", flush=True)
ms: dict[str, list[float]] = {"eager": [], "compiled": []}
for _ in range(4):
    for name, pair in (("eager", eager), ("compiled", compiled)):
        t0 = time.perf_counter()
        for _ in range(40):
            step(*pair)
        ms[name].append((time.perf_counter() - t0) / 40 * 1000)
        print(name, f"{ms[name][-1]:.1f} ms/step", flush=True)
for name, values in ms.items():
    print(name, f"median {statistics.median(values):.1f} ms/step")
