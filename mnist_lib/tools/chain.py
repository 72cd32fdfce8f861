"""The papermill chain: execute the notebooks in order, headless, stopping at the first failure.

A full run writes the executed notebooks back to notebooks/ (they are what the repository shows).
A smoke run (MNIST_SMOKE=1: a few thousand images, one epoch) writes them and everything they
produce under smoke/, so the committed notebooks, results and images are never touched.

Before the first notebook runs, every ``-p NAME VALUE`` is checked against the notebooks'
parameters cells. While a notebook runs, its printed output (the training's epochs) is streamed.
What is saved carries no timestamps and no paths of the machine that ran it, so a second run
with the same results changes only cells that print wall-clock times.
"""

from __future__ import annotations

import ast
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import write_text
from .paths import NOTEBOOKS_DIR, REPO_ROOT
from .widgets import HEADLESS_ENV

SMOKE_ENV = "MNIST_SMOKE"
SMOKE_DIR = REPO_ROOT / "smoke"
# What papermill and nbclient record of a particular execution: times, paths, kernel messages.
VOLATILE_NOTEBOOK_KEYS = (
    "start_time",
    "end_time",
    "duration",
    "input_path",
    "output_path",
    "exception",
)


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order; with ``only``, those whose number or name is listed
    ("02", "06-ablation")."""
    books = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))
    if not only:
        return books
    wanted = set(only)
    unknown = wanted - {b.stem for b in books} - {b.stem[:2] for b in books}
    if unknown:
        raise UserError(
            f"no notebook {', '.join(sorted(unknown))}: choose from "
            f"{', '.join(b.stem for b in books)}"
        )
    return [b for b in books if b.stem in wanted or b.stem[:2] in wanted]


def notebook_parameters(book: Path) -> dict[str, Any]:
    """A notebook's papermill parameters and their default values."""
    import papermill as pm

    return {
        name: ast.literal_eval(p["default"]) for name, p in pm.inspect_notebook(str(book)).items()
    }


def check_parameters(books: list[Path], given: dict[str, Any]) -> None:
    """Refuse a parameter that no notebook of the chain takes, or a value of the wrong type."""
    defaults: dict[str, Any] = {}
    for book in books:
        defaults.update(notebook_parameters(book))
    for name, value in given.items():
        if name not in defaults:
            raise UserError(
                f"no notebook in this chain takes a parameter {name!r}: choose from "
                f"{', '.join(sorted(defaults))} (names are case-sensitive)"
            )
        kind = type(defaults[name])
        if kind is float and type(value) is int:
            continue  # 7 is a fine value for a float parameter
        if type(value) is not kind:
            raise UserError(
                f"parameter {name} must be of type {kind.__name__}, like its default "
                f"{defaults[name]!r}, got {value!r}"
            )


def drop_injected_parameters(path: Path) -> None:
    """Remove a stale `injected-parameters` cell that an earlier papermill run left in ``path``."""
    import nbformat  # here, not at the top: its import is slow, and every notebook would pay for it

    nb = nbformat.read(path, as_version=4)
    kept = [
        c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]
    if len(kept) < len(nb.cells):
        nb.cells = kept
        write_text(path, nbformat.writes(nb))


def without_run_details(nb: Any) -> Any:
    """``nb`` without what one execution recorded: times, paths, per-cell execution metadata.
    The papermill metadata that stays (parameters, version) marks it as a papermill run."""
    papermill = nb.metadata.get("papermill", {})
    for key in VOLATILE_NOTEBOOK_KEYS:
        papermill.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    return nb


@contextlib.contextmanager
def environment(name: str, value: str | None) -> Iterator[None]:
    """Set an environment variable for the block (the kernels inherit it), then restore it."""
    saved = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def run_chain(
    smoke: bool = False,
    parameters: dict | None = None,
    only: list[str] | None = None,
    log: Callable[[str], None] = print,
    stream: bool = True,
) -> list[Path]:
    """Execute every notebook (or those in ``only``) in order; return the executed copies' paths."""
    import nbformat
    import papermill as pm

    books = notebooks(only)
    if not books:
        raise UserError(f"no notebooks found in {NOTEBOOKS_DIR}")
    check_parameters(books, parameters or {})
    out_dir = SMOKE_DIR / "notebooks" if smoke else NOTEBOOKS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    with environment(SMOKE_ENV, "1" if smoke else None), environment(HEADLESS_ENV, "1"):
        for book in books:
            log(f"running {book.name}" + (" (smoke)" if smoke else ""))
            drop_injected_parameters(book)
            try:
                executed = pm.execute_notebook(
                    str(book),
                    None,
                    parameters=parameters or {},
                    cwd=str(NOTEBOOKS_DIR),
                    kernel_name="python3",
                    progress_bar=False,
                    log_output=False,
                    stdout_file=sys.stdout if stream else None,
                    stderr_file=sys.stderr if stream else None,
                )
            except pm.PapermillExecutionError as exc:
                raise UserError(
                    f"{book.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
                ) from None
            target = out_dir / book.name
            write_text(target, nbformat.writes(without_run_details(executed)))
            done.append(target)
    return done
