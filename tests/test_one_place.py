"""One place for each fact: every run-folder file name, environment variable and list of choices
is written once in the library; other code asks the module that owns it."""

import ast
from collections import Counter

from mnist_lib.config import PRECISIONS, SCHEDULES
from mnist_lib.device import DEVICES
from mnist_lib.files import REPO_ROOT

NAMES = [
    "history.json",
    "checkpoint.pt",
    "model.pt",
    "summary.json",
    "ablation.json",
    ".next",
    ".lock",
    "MNIST_CPU_FP32",
    "MNIST_DATA_DIR",
]
CHOICES = [SCHEDULES, PRECISIONS, DEVICES]


def library_trees() -> list[ast.AST]:
    return [ast.parse(p.read_text()) for p in (REPO_ROOT / "mnist_lib").rglob("*.py")]


def test_each_file_name_and_variable_is_written_once():
    counts = Counter(
        node.value
        for tree in library_trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )
    assert {name: counts[name] for name in NAMES} == dict.fromkeys(NAMES, 1)


def test_each_list_of_choices_is_written_once():
    """A list of choices, or any two of its names together, spelled out a second time would be a
    copy that can go stale."""
    found = Counter()
    for tree in library_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                words = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                for choices in CHOICES:
                    if len(words & set(choices)) >= 2:
                        found[choices] += 1
    assert [found[c] for c in CHOICES] == [1, 1, 1]
