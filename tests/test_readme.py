"""The README's results table is the one the committed sweep summaries give."""

from mnist_lib.paths import REPO_ROOT
from mnist_lib.report import results_table


def test_readme_results_table_matches_the_summaries():
    assert results_table() in (REPO_ROOT / "README.md").read_text()
