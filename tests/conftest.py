"""Shared fixtures: the verified MNIST loaded once, a finished small run, two CLI runs to compare.

Every test runs on real MNIST slices on the CPU and writes only under pytest's tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import CLI_RUN, silent, small_config, start_cli

from mnist_lib.data import Mnist, load_mnist
from mnist_lib.fit import fit

# One intra-op thread, here and in every `python -m mnist_lib` child (they inherit the variable):
# on a small shared CPU, two threads fighting other jobs run 4-10x slower than one. The same
# thread count everywhere also keeps CPU results comparable between in-process and CLI runs.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    """The four verified IDX files of the default data dir, as uint8 tensors."""
    return load_mnist(log=silent)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, mnist) -> Path:
    """A finished in-process run of TinyNet's recipe (one-cycle, EMA on) on 256 images."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    fit(small_config(ema=0.999), run_dir, device="cpu", log=silent, data=mnist)
    return run_dir


@pytest.fixture(scope="session")
def cli_runs(tmp_path_factory) -> tuple[Path, Path]:
    """Two 2-epoch CLI runs of the same seed, started side by side; each must exit 0."""
    root = tmp_path_factory.mktemp("cli")
    dirs = (root / "a", root / "b")
    procs = [
        start_cli("train", *CLI_RUN, "--epochs", "2", "--out", d, log=root / f"{d.name}.log")
        for d in dirs
    ]
    codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0, 0], (root / "a.log").read_text() + (root / "b.log").read_text()
    return dirs
