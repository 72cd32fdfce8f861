"""The notebooks' settings: papermill parameters, checked, with the smoke switch applied."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .chain import SMOKE_DIR, SMOKE_ENV
from .errors import UserError
from .paths import REPO_ROOT, resolve

SMOKE = {"epochs": 1, "limit_train": 2000, "limit_test": 1000}


@dataclass(frozen=True)
class NotebookSettings:
    model: str
    epochs: int
    seed: int
    limit_train: int  # 0 = all
    limit_test: int
    device: str
    run_dir: Path  # where 03-train writes history.json and model.pt, and 04/05 read them
    images_dir: Path  # where the figures go
    smoke: bool

    def __repr__(self) -> str:  # paths relative to the repository, so the output is the same on every machine
        show = lambda p: str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p)  # noqa: E731
        return (f"NotebookSettings(model={self.model!r}, epochs={self.epochs}, seed={self.seed}, "
                f"limit_train={self.limit_train}, limit_test={self.limit_test}, device={self.device!r}, "
                f"run_dir={show(self.run_dir)!r}, images_dir={show(self.images_dir)!r}, smoke={self.smoke})")


def is_smoke() -> bool:
    return os.environ.get(SMOKE_ENV, "") not in ("", "0")


def notebook_settings(MODEL: str = "net", EPOCHS: int = 20, SEED: int = 1, LIMIT_TRAIN: int = 0,  # noqa: N803
                      LIMIT_TEST: int = 0, DEVICE: str = "auto", RUN_DIR: str = "results/net",
                      IMAGES_DIR: str = "images") -> NotebookSettings:
    """Check the parameters cell's values; with MNIST_SMOKE=1, shrink the run and redirect its files
    under smoke/ so the committed results and images stay as they are."""
    for name, value in (("EPOCHS", EPOCHS), ("SEED", SEED), ("LIMIT_TRAIN", LIMIT_TRAIN), ("LIMIT_TEST", LIMIT_TEST)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise UserError(f"parameter {name} must be a whole number, got {value!r}: pass e.g. -p {name} 5")
    for name, value in (("MODEL", MODEL), ("DEVICE", DEVICE), ("RUN_DIR", RUN_DIR), ("IMAGES_DIR", IMAGES_DIR)):
        if not isinstance(value, str):
            raise UserError(f"parameter {name} must be a string, got {value!r}")
    smoke = is_smoke()
    run_dir, images_dir = resolve(RUN_DIR), resolve(IMAGES_DIR)
    if smoke:
        EPOCHS, LIMIT_TRAIN, LIMIT_TEST = SMOKE["epochs"], SMOKE["limit_train"], SMOKE["limit_test"]
        run_dir = SMOKE_DIR / run_dir.relative_to(REPO_ROOT) if run_dir.is_relative_to(REPO_ROOT) else run_dir
        images_dir = SMOKE_DIR / "images"
    return NotebookSettings(MODEL, EPOCHS, SEED, LIMIT_TRAIN, LIMIT_TEST, DEVICE, run_dir, images_dir, smoke)
