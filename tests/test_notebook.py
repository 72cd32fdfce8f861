"""The notebooks as a course: the code they show is the library's (notebook 2's `Net`, notebook 3's
loop), they teach one idea each in at most 150 lines of prose, they import nothing from the lab,
and their exercises keep their answers hidden."""

import dataclasses
import re

import nbformat
import pytest
import torch
from helpers import silent

from mnist_lib import model
from mnist_lib.config import recipe
from mnist_lib.data import DeviceData
from mnist_lib.files import REPO_ROOT, read_json
from mnist_lib.fit import fit
from mnist_lib.seeds import changes, read_histories

BOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def cells(book: str) -> list:
    return nbformat.read(REPO_ROOT / "notebooks" / book, as_version=4).cells


def tagged_code(book: str, tag: str) -> str:
    [source] = [c.source for c in cells(book) if tag in c.metadata.get("tags", [])]
    return source


def run_cells(*sources: str) -> dict:
    scope: dict = {}
    for source in sources:
        exec(source, scope)
    return scope


def test_notebook_2_defines_the_library_s_net():
    """Same parameter shapes, and the same outputs for the same weights (BatchNorm moved away
    from the identity, dropout on and off)."""
    imports = "import torch\nimport torch.nn.functional as F\nfrom torch import nn"
    written = run_cells(imports, tagged_code("02-define.ipynb", "net-definition"))["Net"]
    for dropout in (0.0, 0.05):
        mine, theirs = written(dropout), model.Net(dropout)
        assert [(k, v.shape) for k, v in mine.state_dict().items()] == [
            (k, v.shape) for k, v in theirs.state_dict().items()
        ]
        torch.manual_seed(0)
        with torch.no_grad():
            for p in theirs.state_dict().values():
                if p.is_floating_point():
                    p.uniform_(0.5, 1.5)
        mine.load_state_dict(theirs.state_dict())
        x = torch.randn(4, 1, 28, 28)
        torch.testing.assert_close(mine.eval()(x), theirs.eval()(x))


@pytest.mark.training
@pytest.mark.parametrize("shards", [2, 1])
def test_notebook_3_s_loop_gives_fit_s_numbers(tmp_path, mnist, shards):
    """The loop that notebook 3 writes out and `fit` train the same run to the same numbers, every
    epoch (the seconds aside), and to the same weights."""
    imports = next(c.source for c in cells("03-train.ipynb") if "import dataclasses" in c.source)
    scope = run_cells(
        imports.replace("%matplotlib inline", ""), tagged_code("03-train.ipynb", "the-loop")
    )
    cfg = recipe("net", epochs=2, limit_train=1024, limit_test=500, batch_size=128, shards=shards)
    cpu = torch.device("cpu")
    data = DeviceData.from_mnist(mnist, cpu, cfg.limit_train, cfg.limit_test)
    mine, ema = scope["train"](cfg, data, cpu, log=silent)
    theirs = fit(cfg, tmp_path / "run", "cpu", log=silent, data=mnist)
    assert [dataclasses.replace(e, seconds=0) for e in mine.epochs] == [
        dataclasses.replace(e, seconds=0) for e in theirs.epochs
    ]
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(v, saved[k]) for k, v in ema.module.state_dict().items())


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.stem)
def test_each_notebook_teaches_in_at_most_150_lines_of_prose(book):
    prose = sum(len(c.source.splitlines()) for c in cells(book.name) if c.cell_type == "markdown")
    assert prose <= 150


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.stem)
def test_the_course_s_notebooks_import_nothing_from_the_lab(book):
    sources = "\n".join(c.source for c in cells(book.name) if c.cell_type == "code")
    assert not re.search(r"(import|from) mnist_lib\.lab|from mnist_lib import .*\blab\b", sources)


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.stem)
def test_answers_are_hidden_with_their_outputs_and_no_parameters_are_pinned(book):
    for cell in cells(book.name):
        tags = cell.metadata.get("tags", [])
        assert "injected-parameters" not in tags  # a run's values are not the notebook's
        if "answer" in tags:
            assert cell.outputs == [] and cell.metadata["jupyter"]["outputs_hidden"]
            assert cell.metadata["jupyter"]["source_hidden"] and "print(" in cell.source


# Notebook 3's recipe table, each part's row and the ablation variant that takes the part away.
RECIPE_EVIDENCE = {
    "one-cycle": "constant-lr",
    "augmentation": "no-augmentation",
    "weight average": "no-ema",
    "ghost batches": "whole-batches",
    "no dropout": "original-dropout",
}


def test_notebook_3_s_recipe_table_says_what_the_ablation_found():
    ablation = REPO_ROOT / "results" / "ablate"
    runs = {name: read_histories(ablation / name) for name in read_json(ablation / "ablation.json")}
    moved = changes(runs, base="recipe")
    [table] = [c.source for c in cells("03-train.ipynb") if "| part |" in c.source]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    for part, variant in RECIPE_EVIDENCE.items():
        [row] = [line for line in rows if part in line.split("|")[1]]
        said = "beyond chance" in row
        assert said or "within chance" in row, row
        assert said == moved[variant][1], (row, moved[variant])
