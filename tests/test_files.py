"""Atomic writes: a failed write leaves the old file whole and no temporary file behind."""

import pytest

from mnist_lib.files import atomic_write, read_json, write_json


def test_failed_write_keeps_the_old_file(tmp_path):
    path = write_json(tmp_path / "history.json", {"epochs": [1, 2]})

    def crash(tmp):
        tmp.write_text('{"epochs": [')  # half-written, then the process "dies"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, crash)
    assert read_json(path) == {"epochs": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_write_creates_parents_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "x.json"
    write_json(path, {"v": 1})
    write_json(path, {"v": 2})
    assert read_json(path) == {"v": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]
