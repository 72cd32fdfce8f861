"""The papermill chain: execute the notebooks in order, headless, and keep what they show.

A full run writes the executed notebooks back to notebooks/ once every notebook of the chain has
succeeded; a chain that fails leaves the committed notebooks, and the results and images the
notebooks write, as they were. A smoke run gives each notebook the smoke values of its
parameters (a few thousand images, one epoch, files under smoke/) and keeps the executed copies
in smoke/notebooks/: the committed files are never touched. The tests check the notebooks the
same way (`smoke_copy`, for nbval).

Before the first notebook runs, every ``-p NAME VALUE`` is checked: that a notebook of the chain
takes it, its type, and its value as the notebooks use it (the recipe's own validation, the
device). The kernels import this checkout's mnist_lib, whatever an editable install points to.
What is saved carries no timestamps or paths of the machine that ran it, and a cell's printed
output is saved as one stream however the kernel sent it.
"""

import ast
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ...config import UserError, recipe
from ...device import pick_device
from ...files import write_text
from ..paths import NOTEBOOKS_DIR, REPO_ROOT, SMOKE_DIR

# What each parameter becomes in a smoke run; paths that notebooks write move under smoke/.
SMOKE = {"EPOCHS": 1, "BASELINE_EPOCHS": 1, "CAPSTONE_EPOCHS": 1, "LIMIT_TRAIN": 2000,
         "LIMIT_TEST": 1000}  # fmt: skip
WRITTEN = ("RUN_DIR", "IMAGES_DIR", "OUT_DIR")  # parameters naming what a notebook writes
# What papermill and nbclient record of a particular execution: times, paths, kernel messages.
VOLATILE_NOTEBOOK_KEYS = ("start_time", "end_time", "duration", "input_path", "output_path",
                          "exception")  # fmt: skip


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


def smoke_values(defaults: dict[str, Any]) -> dict[str, Any]:
    """The smoke values of the parameters in ``defaults``."""
    values = {k: v for k, v in SMOKE.items() if k in defaults}
    values |= {k: f"{SMOKE_DIR.name}/{defaults[k]}" for k in WRITTEN if k in defaults}
    return values


def checked_parameters(books: list[Path], given: dict[str, Any], smoke: bool) -> dict:
    """Each notebook's parameters as the chain will set them (its smoke values, then ``given``);
    a parameter no notebook takes, a value of the wrong type, or one the notebooks would refuse
    is one line, before any notebook runs."""
    defaults = {book: notebook_parameters(book) for book in books}
    taken: dict[str, Any] = {}
    for d in defaults.values():
        for name, value in d.items():
            taken.setdefault(name, value)
    for name, value in given.items():
        if name not in taken:
            raise UserError(
                f"no notebook in this chain takes a parameter {name!r}: choose from "
                f"{', '.join(sorted(taken))} (names are case-sensitive)"
            )
        kind = type(taken[name])
        if type(value) is not kind and not (kind is float and type(value) is int):
            raise UserError(
                f"parameter {name} must be of type {kind.__name__}, like its default "
                f"{taken[name]!r}, got {value!r}"
            )
    chosen = {
        book: {**(smoke_values(d) if smoke else {}), **{k: v for k, v in given.items() if k in d}}
        for book, d in defaults.items()
    }
    for book, d in defaults.items():
        values = {**d, **chosen[book]}
        try:
            if "MODEL" in values:  # as notebook 03 makes its config
                recipe(values["MODEL"], epochs=values.get("EPOCHS") or None,
                       seed=values.get("SEED"), limit_train=values.get("LIMIT_TRAIN"),
                       limit_test=values.get("LIMIT_TEST"))  # fmt: skip
            pick_device(values.get("DEVICE", "auto"))
        except UserError as exc:
            raise UserError(f"{book.stem} would refuse its parameters: {exc}") from None
    return chosen


def smoke_copy(book: Path, folder: Path) -> Path:
    """``book`` with the smoke values of its parameters injected, unexecuted, in ``folder``."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(book))
    nb = parameterize_notebook(nb, smoke_values(notebook_parameters(book)))
    return write_text(folder / book.name, nbformat.writes(without_run_details(nb)))


def without_run_details(nb: Any) -> Any:
    """``nb`` without what one execution recorded (times, paths, per-cell execution metadata),
    without the answers' outputs, and with each cell's consecutive printed outputs merged into
    one. The papermill metadata that stays (parameters, version) marks it as a papermill run."""
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    papermill = nb.metadata.get("papermill", {})
    for key in VOLATILE_NOTEBOOK_KEYS:
        papermill.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "answer" in cell.metadata.get("tags", []):  # hidden until the reader runs it
            cell.outputs, cell.execution_count = [], None
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"  # papermill draws a new one every run
    return CoalesceStreamsPreprocessor().preprocess(nb, {})[0]


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block (the kernels inherit them), then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def put_back_on_failure(paths: list[Path]) -> Iterator[None]:
    """Copy ``paths`` (folders) aside; should the block fail, put them back as they were."""
    with tempfile.TemporaryDirectory() as kept:
        saved = {p: Path(kept) / str(i) for i, p in enumerate(paths) if p.is_dir()}
        for path, copy in saved.items():
            shutil.copytree(path, copy)
        try:
            yield
        except BaseException:
            for path in paths:
                shutil.rmtree(path, ignore_errors=True)
                if path in saved:
                    shutil.copytree(saved[path], path)
            raise


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
    chosen = checked_parameters(books, parameters or {}, smoke)
    out_dir = SMOKE_DIR / "notebooks" if smoke else NOTEBOOKS_DIR
    values = [{**notebook_parameters(book), **chosen[book]} for book in books]
    written = sorted({REPO_ROOT / v[k] for v in values for k in WRITTEN if k in v})
    executed = []
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    with environment(PYTHONPATH=pythonpath), put_back_on_failure(written):
        for book in books:
            log(f"running {book.name}" + (" (smoke)" if smoke else ""))
            try:
                nb = pm.execute_notebook(
                    str(book), None, parameters=chosen[book], cwd=str(NOTEBOOKS_DIR),
                    kernel_name="python3", progress_bar=False, log_output=False,
                    stdout_file=sys.stdout if stream else None,
                    stderr_file=sys.stderr if stream else None,
                )  # fmt: skip
            except pm.PapermillExecutionError as exc:
                raise UserError(
                    f"{book.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}; "
                    "no notebook, result or image was changed"
                ) from None
            executed.append((book.name, without_run_details(nb)))
    # every notebook written aside first, then renamed in: a failed write changes none of them
    # (the asides are named as temporary files, so a killed chain's leftovers stay out of git)
    staged = [(out_dir / name, out_dir / f".{name}.tmp", nb) for name, nb in executed]
    try:
        for _, aside, nb in staged:
            write_text(aside, nbformat.writes(nb))
        return [aside.replace(path) for path, aside, _ in staged]
    finally:
        for _, aside, _ in staged:
            aside.unlink(missing_ok=True)
