"""Where things live: the repository checkout (when there is one) and the data folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import UserError

PACKAGE_PARENT = Path(__file__).resolve().parents[2]
# A checkout holds the notebooks, results and images next to the package; an installed copy
# (pip install . into site-packages) holds the package alone.
IS_CHECKOUT = (PACKAGE_PARENT / "pyproject.toml").is_file() and (
    PACKAGE_PARENT / "notebooks"
).is_dir()
REPO_ROOT = PACKAGE_PARENT
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
RESULTS_DIR = REPO_ROOT / "results"
DATA_ENV = "MNIST_DATA_DIR"


def need_checkout(what: str) -> Path:
    """The repository root; a clear line when the package runs from an install, not a checkout."""
    if not IS_CHECKOUT:
        raise UserError(
            f"{what} needs a checkout of the repository (git clone), not an installed "
            "package: run it from the clone"
        )
    return REPO_ROOT


def user_cache_dir() -> Path:
    """The per-user cache folder of this platform."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def default_data_dir() -> Path:
    """``$MNIST_DATA_DIR`` if set; else ``data/`` in a checkout, or a per-user cache folder."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return REPO_ROOT / "data" if IS_CHECKOUT else user_cache_dir() / "mnist_lib"


def resolve(path: str | Path) -> Path:
    """An absolute path as given; a relative one against the repository root."""
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path


def shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it: the same text on every machine."""
    path = Path(path)
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
