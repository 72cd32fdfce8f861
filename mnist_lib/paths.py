"""Where things live. Relative paths given by users resolve against the repository root."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
IMAGES_DIR = REPO_ROOT / "images"
RESULTS_DIR = REPO_ROOT / "results"


def default_data_dir() -> Path:
    """``$MNIST_DATA_DIR`` if set, else ``data/`` in the repository."""
    return Path(os.environ.get("MNIST_DATA_DIR", REPO_ROOT / "data"))


def resolve(path: str | Path) -> Path:
    """An absolute path as given; a relative one against the repository root."""
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path
