"""The course apart from the lab: the course's modules import nothing from it, nothing imports in a
circle, every module reads in one sitting, and a default run executes a small part of the code."""

import ast
import json
import subprocess
import sys

import pytest

from mnist_lib.files import REPO_ROOT

PACKAGE = REPO_ROOT / "mnist_lib"


def module_name(path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports, anywhere in its code."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + [node.module] if node.module else base)
                if not node.level:
                    target = node.module or ""
                found |= {
                    f"{target}.{a.name}" if f"{target}.{a.name}" in paths else target
                    for a in node.names
                }
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {d for d in found if d in paths and d != name}
    return graph


def test_the_course_imports_nothing_from_the_lab():
    graph = import_graph()
    course = [m for m in graph if not m.startswith("mnist_lib.lab")]
    assert {"mnist_lib.train", "mnist_lib.fit", "mnist_lib.model"} <= set(course)
    leaks = {m: sorted(d for d in graph[m] if d.startswith("mnist_lib.lab")) for m in course}
    assert {m: d for m, d in leaks.items() if d} == {}


def test_nothing_imports_in_a_circle():
    graph, done, cycles = import_graph(), set(), []

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(path[path.index(module) :] + [module])
        elif module not in done:
            for dependency in sorted(graph[module]):
                visit(dependency, [*path, module])
            done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert cycles == []


def test_a_made_up_cycle_is_found(monkeypatch):
    """The check above can fail: two modules that import each other are a cycle."""
    graph = {"a": {"b"}, "b": {"a"}}
    monkeypatch.setitem(globals(), "import_graph", lambda: graph)
    with pytest.raises(AssertionError):
        test_nothing_imports_in_a_circle()


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=module_name)
def test_every_module_reads_in_one_sitting(path):
    assert len(path.read_text().splitlines()) <= 300


@pytest.mark.training
def test_a_default_run_executes_a_small_part_of_the_course(tmp_path):
    """`train --model net`, measured with coverage as the course's size is judged: at most 600
    statements in at most 10 files, none of them the lab's."""
    data = tmp_path / "coverage"
    command = [
        "-m",
        "mnist_lib",
        "train",
        "--model",
        "net",
        "--epochs",
        "1",
        "--limit-train",
        "1000",
        "--limit-test",
        "500",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "run"),
    ]
    coverage = [sys.executable, "-m", "coverage"]
    subprocess.run(
        [*coverage, "run", f"--data-file={data}", f"--source={PACKAGE}", *command],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*coverage, "json", f"--data-file={data}", "-o", str(tmp_path / "c.json")],
        check=True,
        capture_output=True,
    )
    files = json.loads((tmp_path / "c.json").read_text())["files"]
    executed = {f: v["summary"]["covered_lines"] for f, v in files.items()}
    executed = {f: n for f, n in executed.items() if n}
    assert not [f for f in executed if "/lab/" in f]
    assert len(executed) <= 10 and sum(executed.values()) <= 600, executed
