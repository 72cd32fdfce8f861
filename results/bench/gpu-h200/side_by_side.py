"""One net run of 20 epochs, whole-step graphs vs the eager loop (ShardedStep), in one process."""

import tempfile
import time

from mnist_lib.config import recipe
from mnist_lib.data import load_mnist
from mnist_lib.run import fit_together

data = load_mnist(log=lambda m: None)
cfg = recipe("net")
out = tempfile.mkdtemp()
for k, together in enumerate((True, False, True)):
    t = time.perf_counter()
    h = fit_together(
        [cfg],
        [f"{out}/{k}"],
        device="cuda",
        progress=False,
        log=lambda m: None,
        data=data,
        together=together,
    )[0]
    wall = time.perf_counter() - t
    print(
        f"{'graphs' if together else 'eager '}: {wall:.1f} s wall incl. setup, epochs sum "
        f"{sum(e.seconds for e in h.epochs):.2f} s, epoch 1 {h.epochs[0].seconds:.2f} s, later "
        f"median {sorted(e.seconds for e in h.epochs[1:])[9]:.3f} s, last 5 "
        f"{[round(e.test_acc, 2) for e in h.epochs[-5:]]}, {h.precision}",
        flush=True,
    )
