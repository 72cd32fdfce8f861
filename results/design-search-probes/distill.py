"""Probe: the search recipe with offline distillation from a trained teacher (a Net trained on
the same first 50,000 images): loss = (1 - alpha) * the usual loss + alpha * T^2 * KL(teacher ||
student) at temperature T, on the same augmented batch. From the repository root:

    python results/design-search-probes/distill.py OUT MODEL SEED TEACHER ALPHA T [field=value]

distill-a07-t4/ is design-h, seeds 4-7, ALPHA 0.7, T 4, the teacher of seed s
results/ablate/recipe/seed-{s % 3}.
"""

import sys

import torch
import torch.nn.functional as F

import mnist_lib.run as R
from mnist_lib.augment import affine
from mnist_lib.config import TrainConfig
from mnist_lib.device import autocast
from mnist_lib.train import training_loss

out, model, seed, tdir, alpha, T = sys.argv[1:7]
alpha, T = float(alpha), float(T)
teacher = R.load_trained(tdir, "cpu")
for p in teacher.parameters():
    p.requires_grad_(False)


class KDStep:
    def __init__(self, model, amp):
        self.model, self.amp = model, amp

    def __enter__(self):
        return self

    def __exit__(self, *e):
        pass

    def __call__(self, x, y, thetas):
        if thetas is not None:
            x = affine(x, thetas)
        with torch.no_grad(), autocast(x.device, self.amp):
            t = teacher(x).float()
        self.model.zero_grad(set_to_none=True)
        with autocast(x.device, self.amp):
            lp = self.model(x)
        lp = lp.float()
        hard = training_loss(lp, y)
        soft = (
            F.kl_div(
                F.log_softmax(lp / T, 1),
                F.log_softmax(t / T, 1),
                log_target=True,
                reduction="batchmean",
            )
            * T
            * T
        )
        loss = (1 - alpha) * hard + alpha * soft
        loss.backward()
        return hard.detach(), (lp.argmax(1) == y).sum()


R.make_step = lambda m, shards, amp, smoothing=0.0: KDStep(m, amp)

cfg = TrainConfig(
    model=model, epochs=15, batch_size=128, shards=1, lr=0.2, val=10000, seed=int(seed)
)
for kv in sys.argv[7:]:
    k, v = kv.split("=")
    setattr(cfg, k, type(getattr(cfg, k))(v))
R.fit(cfg, f"{out}/seed-{seed}", device="cpu", progress=False)
