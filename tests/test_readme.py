"""The README's tables are the ones the committed results give."""

from mnist_lib import ablation_table, load_ablation
from mnist_lib.paths import REPO_ROOT, RESULTS_DIR
from mnist_lib.report import results_table

README = REPO_ROOT / "README.md"


def test_readme_results_table_matches_the_summaries():
    assert results_table() in README.read_text()


def test_readme_ablation_table_matches_the_committed_runs():
    assert ablation_table(load_ablation(RESULTS_DIR / "ablate")) in README.read_text()
