"""Issue 17 prototype (ran at commit 8e253c6, before StackedTrainer was rewritten to it): the shards
(and seeds) of a step on concurrent CUDA streams, whole step recorded as one CUDA graph, against
the StackedTrainer of that commit, in one process.
Each seed is its own `Net` (no grouped convolutions); shard k > 0 runs through
torch.func.functional_call with scratch BatchNorm buffers, so only shard 0 moves the statistics."""

import contextlib
import os
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call

from mnist_lib.augment import affine
from mnist_lib.config import recipe
from mnist_lib.data import DeviceData, load_mnist
from mnist_lib.model import Net
from mnist_lib.run import new_member
from mnist_lib.speed import StackedTrainer

dev = torch.device(os.environ.get("DEV", "cuda"))
cuda = dev.type == "cuda"
limit = int(os.environ.get("LIMIT", "0"))
dd = DeviceData.from_mnist(load_mnist(log=lambda m: None), dev, limit, limit // 4)
n = len(dd.train_y)
B, SHARDS, STEPS = 256, 2, int(os.environ.get("STEPS", "234"))
amp = torch.bfloat16 if cuda else None
CL = torch.channels_last


def sync():
    if cuda:
        torch.cuda.synchronize()


def stream_ctx(s):
    return torch.cuda.stream(s) if s is not None else contextlib.nullcontext()


class Proto:
    def __init__(self, seeds: int, concurrent: bool):
        self.models = []
        for s in range(seeds):
            torch.manual_seed(s)
            self.models.append(Net(0.0).to(dev, memory_format=CL).train())
        self.params = [p for m in self.models for p in m.parameters()]
        self.momenta = [torch.zeros_like(p) for p in self.params]
        self.avg = [p.detach().clone() for p in self.params]
        self.scratch = [
            {k: b.clone() for k, b in m.named_buffers()} for m in self.models
        ]  # shard 1's BatchNorm buffers
        self.named = [dict(m.named_parameters()) for m in self.models]
        g = torch.Generator().manual_seed(0)
        self.order = torch.randint(0, n, (seeds, STEPS, B), generator=g).to(dev)
        th = torch.zeros(seeds, STEPS, B, 2, 3)
        th[..., 0, 0] = th[..., 1, 1] = 1
        th[..., :, 2] = torch.rand(seeds, STEPS, B, 2, generator=g) * 0.1
        self.thetas = th.to(dev)
        self.i = torch.zeros(1, dtype=torch.long, device=dev)
        self.loss_sum = torch.zeros(seeds, device=dev)
        jobs = [(r, k) for r in range(seeds) for k in range(SHARDS)]
        self.jobs = jobs
        self.streams = [torch.cuda.Stream() for _ in jobs] if (cuda and concurrent) else None

    def shard(self, r, k):
        i, b = self.i, B // SHARDS
        idx = self.order[r].index_select(0, i).squeeze(0)[k * b : (k + 1) * b]
        th = self.thetas[r].index_select(0, i).squeeze(0)[k * b : (k + 1) * b]
        x = affine(dd.train_x[idx], th).contiguous(memory_format=CL)
        y = dd.train_y[idx]
        m = self.models[r]
        with torch.autocast(
            dev.type, dtype=amp or torch.float32, enabled=amp is not None, cache_enabled=False
        ):
            out = m(x) if k == 0 else functional_call(m, {**self.named[r], **self.scratch[r]}, (x,))
        return F.nll_loss(out.float(), y) / SHARDS

    def step(self):
        losses = []
        if self.streams:
            main = torch.cuda.current_stream()
            for (r, k), s in zip(self.jobs, self.streams, strict=True):
                s.wait_stream(main)
                with stream_ctx(s):
                    losses.append(self.shard(r, k))
            for s in self.streams:
                main.wait_stream(s)
        else:
            losses = [self.shard(r, k) for r, k in self.jobs]
        per_seed = torch.stack(losses).view(len(self.models), SHARDS).sum(1)
        grads = torch.autograd.grad(per_seed.sum(), self.params)
        with torch.no_grad():
            torch._foreach_mul_(self.momenta, 0.9)
            torch._foreach_add_(self.momenta, grads)
            upd = torch._foreach_add(grads, torch._foreach_mul(self.momenta, 0.9))
            torch._foreach_add_(self.params, upd, alpha=-0.01)
            torch._foreach_lerp_(self.avg, [p.detach() for p in self.params], 0.001)
            self.loss_sum.add_(per_seed.detach())
            self.i.add_(1)

    def epoch_time(self):
        if not cuda:
            t = time.perf_counter()
            for _ in range(STEPS):
                self.step()
            return time.perf_counter() - t, None
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self.step()
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            self.step()
        times = []
        for _ in range(3):
            self.i.zero_()
            sync()
            t = time.perf_counter()
            for _ in range(STEPS):
                g.replay()
            sync()
            times.append(time.perf_counter() - t)
        return min(times), self.loss_sum.tolist()


def baseline(seeds):
    cfg = recipe("net", limit_train=limit, limit_test=limit // 4)
    members = [
        new_member(cfg.__class__(**{**cfg.__dict__, "seed": s}), dev, n) for s in range(seeds)
    ]
    t = StackedTrainer(members, dd, cfg, amp, cfg.shards)
    out = []
    for _ in range(3):
        a = time.perf_counter()
        t.train_epoch()
        out.append(time.perf_counter() - a)
    return min(out[1:])


rows = []
for seeds in (1, 5):
    for concurrent in (False, True):
        try:
            p = Proto(seeds, concurrent)
            sec, losses = p.epoch_time()
            rows.append(
                f"prototype seeds {seeds} {'streams' if concurrent else 'one stream'}: "
                f"{sec:.3f} s per {STEPS} steps"
            )
        except Exception as e:  # noqa: BLE001
            failure = f"FAILED {type(e).__name__}: {str(e)[:400]}"
            rows.append(f"prototype seeds {seeds} concurrent {concurrent}: {failure}")
        print(rows[-1], flush=True)
    try:
        sec = baseline(seeds)
        rows.append(
            f"StackedTrainer seeds {seeds}: {sec:.3f} s per epoch (train only, with host prep)"
        )
    except Exception as e:  # noqa: BLE001
        rows.append(f"baseline {seeds}: FAILED {e}")
    print(rows[-1], flush=True)
print("== summary")
print("\n".join(rows))
