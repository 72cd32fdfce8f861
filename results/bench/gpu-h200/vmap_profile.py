"""Where a step's time went on the GPU (run at commit a322f47, when StackedTrainer used vmap)."""

import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from mnist_lib.augment import affine
from mnist_lib.config import recipe
from mnist_lib.data import DeviceData, load_mnist
from mnist_lib.model import Net
from mnist_lib.run import new_member
from mnist_lib.speed import StackedTrainer

cuda = torch.device("cuda")
dd = DeviceData.from_mnist(load_mnist(log=lambda m: None), cuda)
cfg = recipe("net", epochs=2)


def trainer(S, graphs=True, bench=False, amp=torch.bfloat16):
    torch.backends.cudnn.benchmark = bench
    members = [new_member(replace(cfg, seed=s), cuda, len(dd.train_y)) for s in range(S)]
    return StackedTrainer(members, dd, cfg, amp, cfg.shards, graphs=graphs)


def epochs(t, n=2):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        t.train_epoch()
        torch.cuda.synchronize()
        out.append(round(time.perf_counter() - t0, 3))
    return out


for label, kw in [
    ("S1", dict(S=1)),
    ("S1 cudnn.benchmark", dict(S=1, bench=True)),
    ("S1 fp32", dict(S=1, amp=None)),
    ("S5", dict(S=5)),
    ("S5 cudnn.benchmark", dict(S=5, bench=True)),
]:
    print(label, "s/epoch (234 steps):", epochs(trainer(**kw)), flush=True)
torch.backends.cudnn.benchmark = False


def plain_step_time(fmt, amp, bench, batch=256):
    """A plain model (no vmap), whole step recorded by hand: the floor for this net."""
    torch.backends.cudnn.benchmark = bench
    model = Net(0.0).to(cuda, memory_format=fmt).train()
    params = list(model.parameters())
    bufs = [torch.zeros_like(p) for p in params]
    idx = torch.randint(0, 60000, (batch,), device=cuda)
    th = torch.zeros(batch, 2, 3, device=cuda)
    th[:, 0, 0] = 1
    th[:, 1, 1] = 1

    def step():
        x = affine(dd.train_x[idx], th).contiguous(memory_format=fmt)
        with torch.autocast(
            "cuda", dtype=amp or torch.float32, enabled=amp is not None, cache_enabled=False
        ):
            lp = model(x).float()
        loss = F.nll_loss(lp, dd.train_y[idx])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            torch._foreach_mul_(bufs, 0.9)
            torch._foreach_add_(bufs, grads)
            torch._foreach_add_(params, bufs, alpha=-0.01)

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        step()
    for _ in range(20):
        g.replay()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(234):
        g.replay()
    torch.cuda.synchronize()
    return round(time.perf_counter() - t0, 3)


for fmt in (torch.contiguous_format, torch.channels_last):
    for amp in (torch.bfloat16, None):
        for bench in (False, True):
            print(
                "plain graphed step x234:",
                fmt,
                amp,
                "benchmark" if bench else "",
                plain_step_time(fmt, amp, bench),
                flush=True,
            )

t = trainer(1, graphs=False)
t.prepare_epoch()
for _ in range(5):
    t.train_step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(10):
        t.train_step()
    torch.cuda.synchronize()
ev = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
print("CUDA kernels per stacked step:", len(ev) / 10)
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))
