"""Probe: the search recipe with its one-cycle schedule ending `hold` epochs early and its last
rate held from there on. From the repository root:

    python results/design-search-probes/hold.py OUT MODEL SEED hold=3 [field=value...]

hold3/ is design-h, seeds 4-7, hold=3: one cycle over 12 epochs, then 3 at its last rate.
"""

import sys

import mnist_lib.run as R
import mnist_lib.train as TR
from mnist_lib.config import TrainConfig

out, model, seed = sys.argv[1:4]
opts = dict(kv.split("=") for kv in sys.argv[4:])
hold = int(opts.pop("hold", 0))
cfg = TrainConfig(
    model=model, epochs=15, batch_size=128, shards=1, lr=0.2, val=10000, seed=int(seed)
)
for k, v in opts.items():
    setattr(cfg, k, type(getattr(cfg, k))(v))


class Held:
    """A scheduler that stops after ``steps``: the rate stays where it ended (no resume)."""

    def __init__(self, inner, steps):
        self.inner, self.left = inner, steps - 1

    def step(self):
        if self.left > 0:
            self.inner.step()
            self.left -= 1

    def get_last_lr(self):
        return self.inner.get_last_lr()

    def state_dict(self):
        return {}


if hold:
    orig = TR.make_scheduler

    def make_scheduler(opt, c, spe):
        from dataclasses import replace

        inner = orig(opt, replace(c, epochs=c.epochs - hold), spe)
        return Held(inner, (c.epochs - hold) * spe)

    R.make_scheduler = make_scheduler

R.fit(cfg, f"{out}/seed-{seed}", device="cpu", progress=False)
