"""The README teaches the course: at most 200 lines, its results table the one the committed runs
give, figures that exist, and commands that exist."""

import re

from mnist_lib.__main__ import build_parser
from mnist_lib.files import REPO_ROOT
from mnist_lib.lab.__main__ import build_parser as build_lab_parser
from mnist_lib.lab.experiments.report import course_table

README = (REPO_ROOT / "README.md").read_text()
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def commands(parser) -> set[str]:
    return set(parser._subparsers._group_actions[0].choices)


def test_the_readme_is_short():
    assert len(README.splitlines()) <= 200


def test_the_results_table_is_the_one_the_committed_runs_give():
    assert course_table() in README


def test_the_readme_shows_figures_that_exist():
    figures = re.findall(r'src="(images/[\w-]+\.png)"', README)
    assert len(figures) >= 3 and all((REPO_ROOT / f).is_file() for f in figures)


def test_every_command_on_the_pages_exists():
    for page in PAGES:
        text = page.read_text()
        course = set(re.findall(r"python -m mnist_lib (\w+)", text))
        lab = set(re.findall(r"python -m mnist_lib\.lab (\w+)", text))
        assert course <= commands(build_parser()), (page.name, course)
        assert lab <= commands(build_lab_parser()), (page.name, lab)


def test_every_linked_file_exists():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (page.parent / target).resolve().exists(), (page.name, target)
