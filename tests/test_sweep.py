"""Seed sweeps: the summary's arithmetic on hand-made histories, and finished seeds left alone."""

import statistics

import pytest
from helpers import silent, small_config

from mnist_lib import UserError, ablation_table, fit, load_ablation
from mnist_lib.files import read_json
from mnist_lib.sweep import run_seeds, summarize, summary_table

LAST_5 = {
    0: [99.40, 99.45, 99.50, 99.42, 99.48],  # pass: min 99.40, final 99.48
    1: [99.30, 99.50, 99.55, 99.60, 99.52],  # fail: min 99.30, final 99.52
    2: [99.45, 99.47, 99.46, 99.50, 99.44],  # pass: min 99.44, final 99.44
}


def history(seed: int, last: list[float]) -> dict:
    accs = [98.0] * 10 + last
    return {"model": "net", "params": 13_154, "seed": seed, "device": "cpu", "config": {"epochs": 15, "seed": seed},
            "epochs": [{"epoch": i + 1, "test_acc": a, "seconds": 1.5} for i, a in enumerate(accs)]}


def test_summarize_by_hand():
    s = summarize([history(seed, last) for seed, last in LAST_5.items()])
    assert [r["passed"] for r in s["runs"]] == [True, False, True]
    assert [r["min_last"] for r in s["runs"]] == [99.40, 99.30, 99.44]
    assert s["final"]["mean"] == pytest.approx(99.48) and s["final"]["std"] == pytest.approx(0.04)
    # min_last: deviations from 99.38 are +0.02, -0.08, +0.06; sample variance 0.0104 / 2
    assert s["min_last"]["mean"] == pytest.approx(99.38) and s["min_last"]["std"] == pytest.approx(0.0052 ** 0.5)
    assert s["min_last"]["std"] == pytest.approx(statistics.stdev([99.40, 99.30, 99.44]))
    assert (s["worst_min_last"], s["passed"], s["total"]) == (99.30, 2, 3)
    assert s["seconds_per_run"] == pytest.approx(15 * 1.5) and s["epochs"] == 15 and "seed" not in s["config"]
    table = summary_table(s)
    assert "passed 2/3" in table and table.count("FAIL") == 1 and "worst 99.30" in table


def test_run_seeds_keeps_a_finished_seed(tmp_path, mnist):
    out = tmp_path / "sweep"
    fit(small_config(seed=0), out / "seed-0", device="cpu", progress=False, log=silent, data=mnist)
    files = sorted((out / "seed-0").iterdir())
    before = {p.name: p.stat().st_mtime_ns for p in files}

    messages = []
    summary = run_seeds(small_config(), [0, 1], out, device="cpu", progress=False, log=messages.append)
    assert {p.name: p.stat().st_mtime_ns for p in files} == before  # seed 0 not retrained
    assert any(m.startswith("seed 0: already finished") for m in messages)
    assert read_json(out / "seed-1" / "history.json")["seed"] == 1  # seed 1 was trained
    assert [r["seed"] for r in summary["runs"]] == [0, 1] and summary["total"] == 2
    assert summary["runs"][0]["final"] == read_json(out / "seed-0" / "history.json")["epochs"][-1]["test_acc"]
    assert read_json(out / "summary.json") == summary


def test_ablation_table_gives_the_change_against_the_recipe(tmp_path):
    recipe = summarize([history(0, [99.50] * 5), history(1, [99.52] * 5)])
    worse = summarize([history(0, [99.40] * 5), history(1, [99.38] * 5)])
    results = {"recipe": {"changes": {}, "summary": recipe}, "seed-dropout": {"changes": {"dropout": 0.05}, "summary": worse}}
    rows = ablation_table(results).splitlines()
    assert "+0.00" in rows[1] and "3/3" not in rows[1] and "2/2" in rows[1]
    assert "-0.12" in rows[2] and "1/2" in rows[2]
    with pytest.raises(UserError, match="no ablation results"):
        load_ablation(tmp_path)
