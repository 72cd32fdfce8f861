"""The README's tables are the ones the committed results give."""

from mnist_lib.experiments.ablate import ablation_table, load_ablation
from mnist_lib.experiments.report import results_table
from mnist_lib.tools.paths import REPO_ROOT, RESULTS_DIR

README = REPO_ROOT / "README.md"


def test_readme_results_table_matches_the_summaries():
    assert results_table() in README.read_text()


def test_readme_ablation_table_matches_the_committed_runs():
    assert ablation_table(load_ablation(RESULTS_DIR / "ablate")) in README.read_text()
