"""The papermill chain: execute the notebooks in order, headless, stopping at the first failure.

A full run writes the executed notebooks back to notebooks/ (they are what the repository shows).
A smoke run (MNIST_SMOKE=1: a few thousand images, one epoch) writes them and everything they
produce under smoke/, so the committed notebooks, results and images are never touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .errors import UserError
from .files import write_text
from .paths import NOTEBOOKS_DIR, REPO_ROOT

SMOKE_ENV = "MNIST_SMOKE"
SMOKE_DIR = REPO_ROOT / "smoke"


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order; with ``only``, those whose number or name is listed ("02", "06-ablation")."""
    books = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))
    if not only:
        return books
    wanted = set(only)
    unknown = wanted - {b.stem for b in books} - {b.stem[:2] for b in books}
    if unknown:
        raise UserError(f"no notebook {', '.join(sorted(unknown))}: choose from {', '.join(b.stem for b in books)}")
    return [b for b in books if b.stem in wanted or b.stem[:2] in wanted]


def drop_injected_parameters(path: Path) -> None:
    """Remove a stale `injected-parameters` cell that an earlier papermill run left in ``path``."""
    import nbformat  # here, not at the top: its import takes ~2 s, which every notebook would pay via notebook.py

    nb = nbformat.read(path, as_version=4)
    kept = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    if len(kept) < len(nb.cells):
        nb.cells = kept
        write_text(path, nbformat.writes(nb))


def run_chain(smoke: bool = False, parameters: dict | None = None, only: list[str] | None = None,
              log: Callable[[str], None] = print) -> list[Path]:
    """Execute every notebook (or those in ``only``) in order; return the paths of the executed copies."""
    import nbformat
    import papermill as pm

    books = notebooks(only)
    if not books:
        raise UserError(f"no notebooks found in {NOTEBOOKS_DIR}")
    if smoke:
        os.environ[SMOKE_ENV] = "1"  # the kernels inherit it; the notebooks' settings read it
    out_dir = SMOKE_DIR / "notebooks" if smoke else NOTEBOOKS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for book in books:
        log(f"running {book.name}" + (" (smoke)" if smoke else ""))
        drop_injected_parameters(book)
        try:
            executed = pm.execute_notebook(
                str(book), None, parameters=parameters or {}, cwd=str(NOTEBOOKS_DIR),
                kernel_name="python3", progress_bar=False, log_output=False,
            )
        except pm.PapermillExecutionError as exc:
            raise UserError(f"{book.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}") from None
        target = out_dir / book.name
        write_text(target, nbformat.writes(executed))
        done.append(target)
    return done
