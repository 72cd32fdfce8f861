"""The README's tables are the ones the committed results give, and its commands exist."""

import re

from mnist_lib.cli import build_parser
from mnist_lib.experiments.ablate import ablation_table, load_ablation
from mnist_lib.experiments.designs import design_table
from mnist_lib.experiments.report import results_table
from mnist_lib.tools.paths import REPO_ROOT, RESULTS_DIR

README = (REPO_ROOT / "README.md").read_text()


def test_readme_results_table_matches_the_summaries():
    assert results_table() in README


def test_readme_ablation_table_matches_the_committed_runs():
    assert ablation_table(load_ablation(RESULTS_DIR / "ablate")) in README


def test_readme_design_tables_match_the_committed_search():
    for folder in ("design-search", "design-search-gpu"):
        assert design_table(RESULTS_DIR / folder) in README, folder


def test_every_mnist_lib_command_in_the_readme_exists():
    commands = set(re.findall(r"python -m mnist_lib (\w+)", README))
    known = set(build_parser()._subparsers._group_actions[0].choices)
    assert commands and commands <= known, commands - known


def test_every_linked_file_exists():
    for target in re.findall(r"\]\(((?:notebooks|images|results)/[^)#]+)\)", README):
        assert (REPO_ROOT / target).exists(), target
