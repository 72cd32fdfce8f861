"""Files that are never half-written, reads that name a damaged file, folders one process holds,
and where a checkout keeps things."""

import contextlib
import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from .config import UserError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; folders are then not guarded
    fcntl = None

# A checkout holds the notebooks, results and images next to the package; an installed copy
# (pip install . into site-packages) holds the package alone.
REPO_ROOT = Path(__file__).resolve().parents[1]
IS_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "notebooks").is_dir()


def fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's list of names) to the disk."""
    with contextlib.suppress(OSError):  # some file systems cannot sync a folder
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a hidden temporary file beside ``path``, flush it to the disk, then
    rename it over ``path``: readers, a kill or a power cut see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        fsync(tmp)
        os.replace(tmp, path)
        fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, obj: Any) -> Path:
    """Strict JSON: a NaN or an infinity is an error, never written."""
    return write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``; a missing or damaged file is one clear line naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(), parse_constant=reject_constant)
    except FileNotFoundError:
        raise UserError(f"{path} is missing: run the command that writes it first") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON; it may be truncated"
        raise UserError(f"cannot read {path} ({reason}): delete it and run again") from None


def save_torch(path: str | Path, obj: Any) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: str | Path, fix: str = "delete it and run again") -> Any:
    """Load a checkpoint as data only: ``weights_only=True`` never runs pickled code. A missing,
    damaged or foreign file, or one that holds more than data, is one line naming it, with
    ``fix``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path} is missing: {fix}") from None
    except Exception as exc:  # torch.load fails in many ways on bytes it did not write
        if isinstance(exc, (PermissionError, IsADirectoryError)):
            reason = exc.strerror
        elif not zipfile.is_zipfile(path):
            reason = "not a file torch.save wrote: truncated, damaged or another program's"
        elif isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        elif isinstance(exc, pickle.UnpicklingError):
            reason = "it holds objects that are not plain tensors and numbers, so it was not loaded"
        else:
            reason = f"{type(exc).__name__}: it may be damaged"
        raise UserError(f"cannot read {path} ({reason}): {fix}") from None


@contextlib.contextmanager
def locked(path: Path, folder: Path) -> Iterator[None]:
    """Hold ``folder`` for the block, with the process id in its lock file ``path``; refuse (one
    line) when a live process holds it. The lock is the operating system's (flock, on the folder
    itself): a killed process releases it, so no stale lock can block a folder."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = path.read_text().strip() if path.is_file() else "?"
        cmdline = Path(f"/proc/{pid}/cmdline")  # Linux says what the process is
        what = (
            cmdline.read_bytes().replace(b"\0", b" ").decode().strip() if cmdline.is_file() else ""
        )
        raise UserError(
            f"{folder} is in use by process {pid}{f' ({what})' if what else ''}: wait for it to "
            "end, or choose another --out"
        ) from None
    try:
        path.write_text(f"{os.getpid()}\n")
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


@contextlib.contextmanager
def made(path: Path) -> Iterator[None]:
    """Create the folder ``path`` for the block; if it was new, remove it again should the block
    leave it empty (a run refused or stopped before its first file)."""
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create {path} ({exc.strerror or exc}): choose another --out"
        ) from None
    try:
        yield
    finally:
        if created and path.is_dir() and not any(path.iterdir()):
            path.rmdir()
