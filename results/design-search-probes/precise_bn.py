"""Probe: the search recipe with BatchNorm statistics recomputed for the averaged weights on the
first N clean (unaugmented) training images before each evaluation. From the repository root:

    python results/design-search-probes/precise_bn.py OUT MODEL SEED N [field=value...]

precise-bn10k/ is design-h, seeds 4-7, N 10000.
"""

import copy
import sys

import torch
from torch import nn

import mnist_lib.run as R
from mnist_lib.config import TrainConfig
from mnist_lib.device import autocast
from mnist_lib.train import evaluate

out, model, seed, N = sys.argv[1:5]
N = int(N)
cfg = TrainConfig(
    model=model, epochs=15, batch_size=128, shards=1, lr=0.2, val=10000, seed=int(seed)
)
for kv in sys.argv[5:]:
    k, v = kv.split("=")
    setattr(cfg, k, type(getattr(cfg, k))(v))


@torch.no_grad()
def recompute_bn(model, images, amp, bs=500):
    m = copy.deepcopy(model)
    bns = [b for b in m.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None
    m.train()
    for i in range(0, len(images), bs):
        with autocast(images.device, amp):
            m(images[i : i + bs])
    return m.eval()


def ev(self):
    dd, c = self.dd, self.run.cfg
    m = recompute_bn(self.run.eval_model, dd.train_x[:N], self.amp)
    return [evaluate(m, dd.eval_x, dd.eval_y, c.eval_batch_size, self.amp)]


R.LoopTrainer.evaluate = ev
R.fit(cfg, f"{out}/seed-{seed}", device="cpu", progress=False)
