"""The lab's pages: every generated table on them is the one the committed results give."""

import pytest

from mnist_lib.files import REPO_ROOT, read_json
from mnist_lib.lab.experiments.ablate import ablation_table
from mnist_lib.lab.experiments.bench import bench_table
from mnist_lib.lab.experiments.report import (
    EARLIER,
    SWEEPS,
    course_table,
    design_table,
    results_table,
    tiny_batch_table,
)
from mnist_lib.lab.paths import RESULTS_DIR

DOCS = REPO_ROOT / "docs"


def page(name: str) -> str:
    return (DOCS / name).read_text()


def test_the_results_page_gives_every_sweep_and_the_ablation():
    text = page("results.md")
    assert course_table() in text
    assert results_table(SWEEPS) in text and results_table(EARLIER) in text
    assert ablation_table(RESULTS_DIR / "ablate") in text
    assert tiny_batch_table() in text


@pytest.mark.parametrize("folder", ["design-search", "design-search-gpu"])
def test_the_design_search_page_gives_its_tables(folder):
    assert design_table(RESULTS_DIR / folder) in page("design-search.md")


@pytest.mark.parametrize(
    "path",
    sorted((RESULTS_DIR / "bench").glob("*.json"))
    + sorted((RESULTS_DIR / "earlier-code" / "bench").glob("*.json")),
    ids=lambda p: p.stem,
)
def test_the_speed_page_gives_every_benchmark(path):
    text = page("speed.md")
    assert bench_table(read_json(path)) in text and str(path.relative_to(REPO_ROOT)) in text
