"""Colab: a badge and a set-up cell at the top of every notebook, and badges in the README.

The address comes from the repository itself (``git remote get-url origin``) or, for a fork,
from ``--repository``. Without a GitHub address there is nothing Colab could open, so the
notebooks and the README then carry no badge and no set-up cell.

On Colab a notebook opened from GitHub arrives alone, without `mnist_lib` or the data. Its set-up
cell clones the repository and installs only what Colab lacks (torchsummary, the offline MNIST
copy, this package, each with ``--no-deps``): Colab's own torch and ipykernel stay as they are.
Anywhere else (Jupyter, papermill, nbval) the cell does nothing.
"""

import re
import subprocess
from pathlib import Path

from ...config import UserError
from ...fetch import HUB
from ...files import write_text
from ..paths import REPO_ROOT

BRANCH = "main"
BADGE_TAG = "colab-badge"
SETUP_TAG = "colab-setup"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# What the set-up cell installs, the only packages Colab lacks (see requirements.txt).
COLAB_INSTALLS = (["torchsummary==1.5.1"], ["--no-deps", HUB])

SETUP_TEMPLATE = """\
# Colab only: clone the repository and install what Colab lacks; elsewhere this does nothing.
import importlib
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    if not os.path.isdir("{clone}"):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{branch}", "{repository}",
                        "{clone}"], check=True)
    os.chdir("{clone}")
    sys.path.insert(0, "{clone}")
    try:  # installed by an earlier run of this cell?
        import mnist  # noqa: F401  (the offline MNIST copy)
        import torchsummary  # noqa: F401
        import mnist_lib  # noqa: F401
    except ImportError:
        for args in ({installs}, ["--no-deps", "-e", "{clone}"]):
            pip = subprocess.run([sys.executable, "-m", "pip", "install", *args],
                                 capture_output=True, text=True)
            if pip.returncode != 0:
                print(pip.stdout, pip.stderr)
                raise RuntimeError(f"pip install {{' '.join(args)}} failed: its output is above")
        importlib.invalidate_caches()"""

GITHUB = re.compile(
    r"(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)"
    r"([\w.-]+)/([\w.-]+?)(?:\.git)?/?"
)


def check_repository(url: str) -> str:
    """A GitHub address as https://github.com/OWNER/NAME (from https, ssh or scp-like forms)."""
    match = GITHUB.fullmatch(url.strip())
    if not match:
        raise UserError(
            f"not a GitHub repository address: {url!r}: give it as https://github.com/OWNER/NAME"
        )
    return f"https://github.com/{match[1]}/{match[2]}"


def repository_from_git(root: Path = REPO_ROOT) -> str | None:
    """This checkout's GitHub address (its ``origin`` remote), or None when it has none."""
    try:
        url = subprocess.run(
            ["git", "-C", str(root), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return check_repository(url)
    except (OSError, subprocess.CalledProcessError, UserError):
        return None


def github_slug(repository: str) -> str:
    """OWNER/NAME of a checked GitHub address."""
    return check_repository(repository).removeprefix("https://github.com/")


def colab_url(notebook: str, repository: str, branch: str = BRANCH) -> str:
    """The address that opens ``notebooks/<notebook>`` of ``repository`` on Colab."""
    return (
        f"https://colab.research.google.com/github/{github_slug(repository)}/blob/{branch}/"
        f"notebooks/{notebook}"
    )


def badge_source(notebook: str, repository: str) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook, repository)})"


def setup_source(repository: str) -> str:
    repository = check_repository(repository)
    clone = f"/content/{github_slug(repository).split('/')[1]}"
    return SETUP_TEMPLATE.format(
        repository=repository,
        branch=BRANCH,
        clone=clone,
        installs=", ".join(map(repr, COLAB_INSTALLS)),
    )


# A notebook link in the README's table, with the Colab badge that may follow it.
README_LINK = re.compile(
    r"(\[\d\d-[\w-]+\]\(notebooks/(\d\d-[\w-]+\.ipynb)\))"
    r"(?: \[!\[Open In Colab\]\([^)]*\)\]\([^)]*\))?"
)


def point_readme(readme: Path, repository: str | None) -> None:
    """Give every notebook link in the README its Colab badge for ``repository`` (None: none)."""

    def link(m: re.Match) -> str:
        return m[1] + (f" {badge_source(m[2], repository)}" if repository else "")

    text = readme.read_text()
    new = README_LINK.sub(link, text)
    if new != text:
        write_text(readme, new)


def tagged(cell: dict, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def colab_cells(notebook: str, repository: str) -> list:
    """The two cells a notebook starts with: the badge (markdown) and the set-up (code)."""
    import nbformat

    badge = nbformat.v4.new_markdown_cell(
        badge_source(notebook, repository), metadata={"tags": [BADGE_TAG]}
    )
    setup = nbformat.v4.new_code_cell(setup_source(repository), metadata={"tags": [SETUP_TAG]})
    badge.id, setup.id = BADGE_TAG, SETUP_TAG  # fixed ids: rewriting the cells does not churn
    return [badge, setup]


def point_notebook(path: Path, repository: str | None) -> None:
    """Put (or replace) the badge and set-up cells at the top of the notebook at ``path``; with
    no repository, remove them."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    rest = [c for c in nb.cells if not (tagged(c, BADGE_TAG) or tagged(c, SETUP_TAG))]
    cells = (colab_cells(path.name, repository) if repository else []) + rest
    if [(c.cell_type, c.source) for c in cells] != [(c.cell_type, c.source) for c in nb.cells]:
        nb.cells = cells
        write_text(path, nbformat.writes(nb))
