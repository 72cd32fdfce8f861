"""Where the lab finds the repository's folders: it works in a checkout, not an installed copy."""

from ..config import UserError
from ..files import IS_CHECKOUT, REPO_ROOT

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
RESULTS_DIR = REPO_ROOT / "results"
SMOKE_DIR = REPO_ROOT / "smoke"  # what a smoke run of the notebooks writes: never committed


def need_checkout(what: str):
    """The repository root; a clear line when the package runs from an install, not a checkout."""
    if not IS_CHECKOUT:
        raise UserError(
            f"{what} needs a checkout of the repository (git clone), not an installed "
            "package: run it from the clone"
        )
    return REPO_ROOT
