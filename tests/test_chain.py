"""The papermill chain: which notebooks it runs, the parameters it accepts, and what it saves."""

import re

import nbformat
import pytest
from helpers import run_cli, silent
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mnist_lib import UserError
from mnist_lib.tools.chain import (
    check_parameters,
    drop_injected_parameters,
    notebooks,
    run_chain,
    without_run_details,
)
from mnist_lib.tools.paths import REPO_ROOT

# The course, in order: what `run` executes.
NOTEBOOKS = [
    "01-visualise",
    "02-define",
    "03-train",
    "04-evaluate",
    "05-plot",
    "06-ablation",
    "07-speed",
]


def test_notebooks_in_order_and_by_number_or_name():
    assert [b.stem for b in notebooks()] == NOTEBOOKS
    assert [b.stem[:2] for b in notebooks(["05", "02-define"])] == ["02", "05"]


def test_an_unknown_notebook_is_named():
    with pytest.raises(UserError, match="no notebook 99.*choose from 01-visualise"):
        notebooks(["99"])


def test_drop_injected_parameters(tmp_path):
    path = tmp_path / "03-train.ipynb"
    nbformat.write(
        new_notebook(
            cells=[
                new_markdown_cell("# Train"),
                new_code_cell("EPOCHS = 20", metadata={"tags": ["parameters"]}),
                new_code_cell(
                    "# Parameters\nEPOCHS = 1", metadata={"tags": ["injected-parameters"]}
                ),
                new_code_cell("print(EPOCHS)"),
            ]
        ),
        path,
    )
    drop_injected_parameters(path)
    cells = nbformat.read(path, as_version=4).cells
    assert [c.source for c in cells] == ["# Train", "EPOCHS = 20", "print(EPOCHS)"]
    assert cells[1].metadata.tags == ["parameters"]

    clean = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    drop_injected_parameters(path)  # nothing to drop: the file is left alone
    assert path.read_bytes() == clean and path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("EPOCHS", "abc", r"EPOCHS must be of type int, like its default 0, got 'abc'"),
        (
            "epochs",
            5,
            r"no notebook in this chain takes a parameter 'epochs'.*EPOCHS.*case-sensitive",
        ),
        ("SEED", 1.5, r"SEED must be of type int"),
    ],
)
def test_parameters_are_checked_before_any_notebook_runs(name, value, problem):
    with pytest.raises(UserError, match=problem):
        check_parameters(notebooks(), {name: value})


def test_bad_parameter_on_the_command_line_runs_nothing():
    result = run_cli("run", "--smoke", "-p", "EPOCHS", "abc")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "running" not in result.stdout


def test_what_one_execution_recorded_is_not_saved():
    nb = new_notebook(
        cells=[
            new_code_cell(
                "1 + 1",
                metadata={
                    "papermill": {
                        "start_time": "2026-11-26T01:02:03",
                        "duration": 1.5,
                        "status": "completed",
                    },
                    "execution": {"iopub.status.busy": "2026-11-26T01:02:03"},
                    "tags": ["x"],
                },
            )
        ]
    )
    nb.metadata["papermill"] = {
        "input_path": "/home/me/01.ipynb",
        "output_path": "/home/me/01.ipynb",
        "start_time": "t",
        "end_time": "t",
        "duration": 9.0,
        "parameters": {"SEED": 2},
        "version": "2.7.0",
    }
    clean = without_run_details(nb)
    assert clean.metadata["papermill"] == {"parameters": {"SEED": 2}, "version": "2.7.0"}
    assert clean.cells[0].metadata == {"tags": ["x"]}


def test_a_second_run_changes_no_notebook(mnist):
    """The define notebook, executed twice (smoke): the same bytes, with no path or time in them,
    but for the seconds its last cell says it took (a second either way on a busy machine).
    MNIST is on disk first (the fixture), or a fresh clone's first run also says it wrote it."""
    took = re.compile(rb"this notebook took \d+ s")
    first, second = (
        took.sub(
            b"took N s",
            run_chain(smoke=True, only=["02"], log=silent, stream=False)[0].read_bytes(),
        )
        for _ in range(2)
    )
    assert first == second
    assert first.count(b"took N s") == 1  # the one line allowed to differ, and only it
    assert str(REPO_ROOT).encode() not in first and b"start_time" not in first
