"""The notebooks' settings: papermill parameters, checked, with the smoke switch applied."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..device import hardware, pick_device
from ..errors import UserError
from .chain import SMOKE_DIR, SMOKE_ENV
from .paths import REPO_ROOT, resolve, shown

SMOKE = {"epochs": 1, "limit_train": 2000, "limit_test": 1000}


@dataclass(frozen=True)
class NotebookSettings:
    model: str
    epochs: int
    seed: int
    limit_train: int  # 0 = all
    limit_test: int
    device: str
    run_dir: Path  # where 03-train writes its run, and 04/05 read it
    images_dir: Path  # where the figures go
    smoke: bool

    def __repr__(self) -> str:  # paths relative to the repository: the same output on every machine
        return (
            f"NotebookSettings(model={self.model!r}, epochs={self.epochs}, seed={self.seed}, "
            f"limit_train={self.limit_train}, limit_test={self.limit_test}, "
            f"device={self.device!r}, run_dir={shown(self.run_dir)!r}, "
            f"images_dir={shown(self.images_dir)!r}, smoke={self.smoke})"
        )


def is_smoke() -> bool:
    return os.environ.get(SMOKE_ENV, "") not in ("", "0")


def in_smoke_dir(path: Path) -> Path:
    """Where a smoke run writes what a full run writes to ``path``."""
    return SMOKE_DIR / path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path


def notebook_settings(
    MODEL: str = "net",
    EPOCHS: int = 0,
    SEED: int = 1,  # noqa: N803
    LIMIT_TRAIN: int = 0,
    LIMIT_TEST: int = 0,
    DEVICE: str = "auto",
    RUN_DIR: str = "results/net",
    IMAGES_DIR: str = "images",
) -> NotebookSettings:
    """Check the parameters cell's values; with MNIST_SMOKE=1, shrink the run and redirect its
    files under smoke/ so the committed results and images stay as they are. ``EPOCHS`` 0 means
    the model's recipe."""
    for name, value in (
        ("EPOCHS", EPOCHS),
        ("SEED", SEED),
        ("LIMIT_TRAIN", LIMIT_TRAIN),
        ("LIMIT_TEST", LIMIT_TEST),
    ):
        if not isinstance(value, int) or isinstance(value, bool):
            raise UserError(
                f"parameter {name} must be a whole number, got {value!r}: pass e.g. -p {name} 5"
            )
    for name, value in (
        ("MODEL", MODEL),
        ("DEVICE", DEVICE),
        ("RUN_DIR", RUN_DIR),
        ("IMAGES_DIR", IMAGES_DIR),
    ):
        if not isinstance(value, str):
            raise UserError(f"parameter {name} must be a string, got {value!r}")
    smoke = is_smoke()
    run_dir, images_dir = resolve(RUN_DIR), resolve(IMAGES_DIR)
    if smoke:
        EPOCHS, LIMIT_TRAIN, LIMIT_TEST = SMOKE["epochs"], SMOKE["limit_train"], SMOKE["limit_test"]
        run_dir, images_dir = in_smoke_dir(run_dir), in_smoke_dir(images_dir)
    return NotebookSettings(
        MODEL, EPOCHS, SEED, LIMIT_TRAIN, LIMIT_TEST, DEVICE, run_dir, images_dir, smoke
    )


def timing_line(start: float, settings: NotebookSettings) -> str:
    """How long a notebook took since ``start`` (time.perf_counter), and on what."""
    device = pick_device(settings.device)
    smoke = ", smoke run" if settings.smoke else ""
    return (
        f"this notebook took {time.perf_counter() - start:.0f} s on {hardware(device)} "
        f"({device.type}{smoke})"
    )
