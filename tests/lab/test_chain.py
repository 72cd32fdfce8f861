"""The papermill chain: which notebooks it runs, the parameters it accepts, what it saves, and that
a chain that fails changes nothing committed."""

import re

import nbformat
import pytest
import torch
from helpers import run_cli, silent
from nbformat.v4 import new_code_cell, new_notebook, new_output

import mnist_lib.lab.notebooks.chain as chain
from mnist_lib.config import UserError
from mnist_lib.files import write_text
from mnist_lib.lab.notebooks.chain import (
    checked_parameters,
    notebooks,
    run_chain,
    smoke_copy,
    smoke_values,
    without_run_details,
)
from mnist_lib.lab.paths import REPO_ROOT

# The course, in order: what `run` executes.
NOTEBOOKS = [
    "01-visualise",
    "02-define",
    "03-train",
    "04-evaluate",
    "05-plot",
    "06-ablation",
    "07-speed",
    "08-capstone",
]


def test_notebooks_in_order_and_by_number_or_name():
    assert [b.stem for b in notebooks()] == NOTEBOOKS
    assert [b.stem[:2] for b in notebooks(["05", "02-define"])] == ["02", "05"]


def test_an_unknown_notebook_is_named():
    with pytest.raises(UserError, match="no notebook 99.*choose from 01-visualise"):
        notebooks(["99"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_cuda_device_is_refused_before_any_runs_on_a_machine_without_one():
    with pytest.raises(UserError, match=r"would refuse its parameters: .*cuda"):
        checked_parameters(notebooks(), {"DEVICE": "cuda"}, smoke=False)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("EPOCHS", "abc", r"EPOCHS must be of type int, like its default 0, got 'abc'"),
        ("epochs", 5, r"no notebook .* takes a parameter 'epochs'.*EPOCHS.*case-sensitive"),
        ("SEED", 1.5, r"SEED must be of type int"),
        ("EPOCHS", -1, r"03-train would refuse its parameters: epochs must be at least 1, got -1"),
        ("MODEL", "foo", r"03-train would refuse its parameters: unknown model 'foo'"),
        ("LIMIT_TRAIN", 100, r"03-train would refuse .*batch size 256 is larger than the 100"),
        ("DEVICE", "tpu", r"would refuse its parameters: unknown device 'tpu'"),
    ],
)
def test_parameters_are_checked_as_the_notebooks_use_them_before_any_runs(name, value, problem):
    with pytest.raises(UserError, match=problem):
        checked_parameters(notebooks(), {name: value}, smoke=False)


def test_smoke_values_shrink_the_run_and_move_what_is_written_under_smoke():
    assert smoke_values(
        {"EPOCHS": 0, "SEED": 1, "RUN_DIR": "results/net", "IMAGES_DIR": "images"}
    ) == {"EPOCHS": 1, "RUN_DIR": "smoke/results/net", "IMAGES_DIR": "smoke/images"}
    chosen = checked_parameters(notebooks(["03"]), {"EPOCHS": 3}, smoke=True)
    assert list(chosen.values())[0]["EPOCHS"] == 3  # asked for, so done as asked


def test_a_smoke_copy_carries_the_smoke_values_after_the_parameters(tmp_path):
    copy = nbformat.read(smoke_copy(notebooks(["03"])[0], tmp_path), as_version=4)
    tags = [c.metadata.get("tags", []) for c in copy.cells]
    at = tags.index(["injected-parameters"])
    assert "parameters" in tags[at - 1]
    assert 'RUN_DIR = "smoke/results/net"' in copy.cells[at].source


def test_bad_parameter_on_the_command_line_runs_nothing():
    result = run_cli("run", "--smoke", "-p", "EPOCHS", "-1", lab=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "running" not in result.stdout


def test_what_one_execution_recorded_is_not_saved_and_streams_are_merged():
    cell = new_code_cell(
        "print(1)",
        metadata={
            "papermill": {"start_time": "2026-11-26T01:02:03", "duration": 1.5},
            "execution": {"iopub.status.busy": "2026-11-26T01:02:03"},
            "tags": ["x"],
        },
    )
    cell.outputs = [
        new_output("stream", name="stdout", text="a table\n"),
        new_output("stream", name="stdout", text="\n"),
    ]
    nb = new_notebook(cells=[cell])
    nb.metadata["papermill"] = {
        "input_path": "/home/me/01.ipynb",
        "output_path": "/home/me/01",
        "start_time": "t",
        "end_time": "t",
        "duration": 9.0,
        "parameters": {"SEED": 2},
        "version": "2.7.0",
    }
    clean = without_run_details(nb)
    assert clean.metadata["papermill"] == {"parameters": {"SEED": 2}, "version": "2.7.0"}
    assert clean.cells[0].metadata == {"tags": ["x"]}
    assert [o.text for o in clean.cells[0].outputs] == ["a table\n\n"]  # however it arrived


def two_notebooks(folder, images):
    """A chain whose first notebook writes an image and whose second fails."""
    for name, source in (
        ("01-draw", "(IMAGES_DIR / 'new.png').write_text('x')"),
        ("02-fail", "1 / 0"),
    ):
        cells = [
            new_code_cell(
                f"from pathlib import Path\nIMAGES_DIR = Path({str(images)!r})",
                metadata={"tags": ["parameters"]},
            ),
            new_code_cell(source),
        ]
        nbformat.write(new_notebook(cells=cells), folder / f"{name}.ipynb")


def test_a_chain_that_fails_changes_no_notebook_and_puts_back_what_it_wrote(tmp_path, monkeypatch):
    books, images = tmp_path / "notebooks", tmp_path / "images"
    books.mkdir()
    images.mkdir()
    (images / "old.png").write_text("old")
    two_notebooks(books, images)
    before = {p.name: p.read_bytes() for p in books.iterdir()}
    monkeypatch.setattr(chain, "NOTEBOOKS_DIR", books)
    monkeypatch.setattr(chain, "WRITTEN", ("IMAGES_DIR",))
    monkeypatch.setattr(chain, "checked_parameters", lambda b, given, smoke: dict.fromkeys(b, {}))
    monkeypatch.setattr(chain, "notebook_parameters", lambda book: {"IMAGES_DIR": str(images)})
    with pytest.raises(
        UserError,
        match=r"02-fail.ipynb failed in cell \d+: ZeroDivisionError.*"
        r"no notebook, result or image was changed",
    ):
        run_chain(log=silent, stream=False)
    assert {p.name: p.read_bytes() for p in books.iterdir()} == before
    assert sorted(p.name for p in images.iterdir()) == ["old.png"]


def test_a_write_back_that_fails_changes_no_notebook(tmp_path, monkeypatch):
    books = tmp_path / "notebooks"
    books.mkdir()
    for name in ("01-one", "02-two"):
        nbformat.write(new_notebook(cells=[new_code_cell("print(1)")]), books / f"{name}.ipynb")
    before = {p.name: p.read_bytes() for p in books.iterdir()}
    monkeypatch.setattr(chain, "NOTEBOOKS_DIR", books)
    writes = []

    def full_disk_on_the_second(path, text):
        writes.append(path)
        if len(writes) == 2:
            raise OSError(28, "No space left on device")
        return write_text(path, text)

    monkeypatch.setattr(chain, "write_text", full_disk_on_the_second)
    with pytest.raises(OSError, match="No space"):
        run_chain(log=silent, stream=False)
    assert {p.name: p.read_bytes() for p in books.iterdir()} == before


def test_the_kernels_import_this_checkout(tmp_path, monkeypatch):
    books = tmp_path / "notebooks"
    books.mkdir()
    cell = new_code_cell("import mnist_lib\nprint(mnist_lib.__file__)")
    nbformat.write(new_notebook(cells=[cell]), books / "01-where.ipynb")
    monkeypatch.setattr(chain, "NOTEBOOKS_DIR", books)
    (tmp_path / "mnist_lib").mkdir()  # another checkout's package, first on the path
    (tmp_path / "mnist_lib" / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    [done] = run_chain(log=silent, stream=False)
    printed = nbformat.read(done, as_version=4).cells[0].outputs[0].text
    assert printed.strip() == str(REPO_ROOT / "mnist_lib" / "__init__.py")


def test_a_second_run_changes_no_notebook(mnist):
    """The data notebook, executed twice (smoke): the same bytes, with no path or time in them.
    MNIST is on disk first (the fixture), or a fresh clone's first run also says it wrote it."""
    first, second = (
        run_chain(smoke=True, only=["01"], log=silent, stream=False)[0].read_bytes()
        for _ in range(2)
    )
    assert first == second
    assert str(REPO_ROOT).encode() not in first and b"start_time" not in first
    assert not re.search(rb"injected-parameters.*\n.*RUN_DIR", first)
