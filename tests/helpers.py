"""Helpers the tests import: small configs, a CLI runner, history comparison."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mnist_lib.config import TrainConfig, UserError
from mnist_lib.data import Mnist
from mnist_lib.files import REPO_ROOT
from mnist_lib.fit import fit
from mnist_lib.record import Epoch, History

# The CLI runs that tests compare (plus --epochs): seed 7, 5,000 train / 1,000 test images, on the
# CPU even where there is a GPU (exact comparisons need a deterministic device).
CLI_RUN = [
    "--seed",
    "7",
    "--limit-train",
    "5000",
    "--limit-test",
    "1000",
    "--device",
    "cpu",
]


def silent(message: str) -> None:
    pass


def fit_quietly(cfg: TrainConfig, run_dir: Path, data: Mnist, **options) -> History:
    """`fit` on the CPU with no output, on MNIST already loaded."""
    return fit(cfg, run_dir, device="cpu", data=data, **{"log": silent, **options})


def small_config(**overrides) -> TrainConfig:
    """A run that takes about a second on one CPU thread: TinyNet, 256 + 256 images, one epoch."""
    base = {"model": "tiny", "epochs": 1, "limit_train": 256, "limit_test": 256, "batch_size": 64}
    return TrainConfig(**{**base, **overrides})


def run_cli(
    *args: str | Path, timeout: float = 300, lab: bool = False
) -> subprocess.CompletedProcess:
    """`python -m mnist_lib ARGS` (``lab``: `mnist_lib.lab`) from the repository root; text
    output captured."""
    return subprocess.run(
        [sys.executable, "-m", "mnist_lib.lab" if lab else "mnist_lib", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str | Path, log: Path, lab: bool = False) -> subprocess.Popen:
    """The same, started in the background, its stdout and stderr going to ``log``."""
    with open(log, "w") as out:  # the child keeps its own copy of the file descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "mnist_lib.lab" if lab else "mnist_lib", *map(str, args)],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def made_history(
    accs: list[float], params: int = 13_154, seed: int = 0, seconds: float = 1.5, val: int = 0
) -> History:
    """A hand-made history whose epochs score ``accs`` (on the test set, or with ``val`` the
    validation set); the losses are placeholders."""
    split = "val" if val else "test"
    epochs = [
        Epoch(
            i + 1, 0.1, 99.0, lr=0.01, seconds=seconds, **{f"{split}_loss": 0.02, f"{split}_acc": a}
        )
        for i, a in enumerate(accs)
    ]
    config = {"model": "net", "epochs": len(accs), "seed": seed, "val": val}
    return History("net", params, seed, "cpu", config, epochs)


def without_timing(history: dict) -> dict:
    """A history with the wall-clock fields dropped: everything left must be reproducible."""
    return {
        **history,
        "epochs": [{k: v for k, v in e.items() if k != "seconds"} for e in history["epochs"]],
    }


def damaged(valid: bytes) -> list[bytes]:
    """Ten random files, text, an empty file, and ``valid`` cut at five places."""
    rng = random.Random(0)
    variants = [rng.randbytes(rng.choice([10, 500, 5000])) for _ in range(10)]
    variants += [b"hello world\n" * 100, b""]
    return variants + [valid[: len(valid) * k // 6] for k in range(1, 6)]


def one_line(error: pytest.ExceptionInfo, path: Path) -> None:
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message


def each_damaged_copy_is_named(valid: bytes, like: Path, load: Callable[[Path], object]) -> None:
    """``load`` of each damaged copy of ``valid`` (named after ``like``) is one line naming it."""
    for i, data in enumerate(damaged(valid)):
        path = like.with_name(f"damaged-{i}{like.suffix}")
        path.write_bytes(data)
        with pytest.raises(UserError) as error:
            load(path)
        one_line(error, path)
