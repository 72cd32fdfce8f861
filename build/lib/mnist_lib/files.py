"""Files that are never half-written, and reads that say which file is damaged."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .errors import UserError


def fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    """Flush ``path`` (a file, or a folder's list of names) to the disk."""
    with contextlib.suppress(OSError):  # some file systems cannot sync a folder
        fd = os.open(path, flags)
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


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


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
    """Load a checkpoint as data only: ``weights_only=True`` never runs pickled code. A damaged
    file, or one that holds more than data, is one line naming it, with ``fix``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path} is missing: {fix}") from None
    except pickle.UnpicklingError:
        raise UserError(
            f"{path} holds objects that are not plain tensors and numbers, so it was "
            f"not loaded (it was not written by this library): {fix}"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise UserError(
            f"cannot read {path} ({reason}; it may be truncated or damaged): {fix}"
        ) from None
