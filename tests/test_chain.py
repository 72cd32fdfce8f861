"""The papermill chain: which notebooks it runs, and its clean-up of a stale injected-parameters cell."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mnist_lib import UserError
from mnist_lib.chain import drop_injected_parameters, notebooks


def test_notebooks_in_order_and_by_number_or_name():
    names = [b.stem for b in notebooks()]
    assert names == sorted(names) and names[0].startswith("01-") and len(names) >= 6
    assert [b.stem[:2] for b in notebooks(["05", "02-define"])] == ["02", "05"]


def test_an_unknown_notebook_is_named():
    with pytest.raises(UserError, match="no notebook 99.*choose from 01-visualise"):
        notebooks(["99"])


def test_drop_injected_parameters(tmp_path):
    path = tmp_path / "03-train.ipynb"
    nbformat.write(new_notebook(cells=[
        new_markdown_cell("# Train"),
        new_code_cell("EPOCHS = 20", metadata={"tags": ["parameters"]}),
        new_code_cell("# Parameters\nEPOCHS = 1", metadata={"tags": ["injected-parameters"]}),
        new_code_cell("print(EPOCHS)"),
    ]), path)
    drop_injected_parameters(path)
    cells = nbformat.read(path, as_version=4).cells
    assert [c.source for c in cells] == ["# Train", "EPOCHS = 20", "print(EPOCHS)"]
    assert cells[1].metadata.tags == ["parameters"]

    clean = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    drop_injected_parameters(path)  # nothing to drop: the file is left alone
    assert path.read_bytes() == clean and path.stat().st_mtime_ns == mtime
