"""Seed sweeps: the summary's arithmetic on hand-made histories; finished seeds reused only when
they were made with the same settings; commands for any scheduler."""

import shlex
from dataclasses import replace

import pytest
from helpers import fit_quietly, made_history, run_cli, silent, small_config

import mnist_lib.lab.experiments.sweep as sweep_module
from mnist_lib.config import UserError
from mnist_lib.files import read_json, write_json
from mnist_lib.lab.experiments import ablate as ablate_module
from mnist_lib.lab.experiments.ablate import (
    ABLATION,
    ablation_commands,
    ablation_table,
    load_ablation,
    run_ablation,
)
from mnist_lib.lab.experiments.report import design_table, search_recipe
from mnist_lib.lab.experiments.sweep import (
    run_seeds,
    seed_folder,
    summarize,
    summary_table,
    train_commands,
)

pytestmark = pytest.mark.training  # run again in fp32 by `make test`

LAST_5 = {
    0: [99.40, 99.45, 99.50, 99.42, 99.48],  # pass: min 99.40, final 99.48
    1: [99.30, 99.50, 99.55, 99.60, 99.52],  # fail: min 99.30, final 99.52
    2: [99.45, 99.47, 99.46, 99.50, 99.44],  # pass: min 99.44, final 99.44
}


def test_summarize_by_hand():
    s = summarize([made_history([98.0] * 10 + last, seed=seed) for seed, last in LAST_5.items()])
    assert [r["passed"] for r in s["runs"]] == [True, False, True]
    assert [r["min_last"] for r in s["runs"]] == [99.40, 99.30, 99.44]
    assert s["final"]["mean"] == pytest.approx(99.48) and s["final"]["std"] == pytest.approx(0.04)
    # min_last: deviations from 99.38 are +0.02, -0.08, +0.06; sample variance 0.0104 / 2
    assert s["min_last"]["mean"] == pytest.approx(99.38)
    assert s["min_last"]["std"] == pytest.approx(0.0052**0.5)
    assert (s["worst_min_last"], s["passed"], s["total"]) == (99.30, 2, 3)
    assert s["seconds_per_run"] == pytest.approx(15 * 1.5) and s["epochs"] == 15
    assert "seed" not in s["config"] and s["split"] == "test"
    table = summary_table(s)
    assert "passed 2/3" in table and table.count("FAIL") == 1 and "worst 99.30" in table


def test_runs_trained_together_share_their_epoch_seconds():
    """Three runs trained in one step each record the shared epoch's wall time: each run's
    time is its third of it, and the summary says they trained together."""
    histories = [made_history([98.0] * 10 + last, seed=seed) for seed, last in LAST_5.items()]
    for h in histories:
        for e in h.epochs:
            e.together = 3
    s = summarize(histories)
    assert s["seconds_per_run"] == pytest.approx(15 * 1.5 / 3) and s["trained_together"] == 3
    assert summarize([made_history([99.5] * 15)])["trained_together"] == 1


def test_run_seeds_keeps_a_finished_seed(tmp_path, mnist):
    out = tmp_path / "sweep"
    fit_quietly(small_config(seed=0), out / "seed-0", mnist)
    files = sorted((out / "seed-0").iterdir())
    before = {p.name: p.stat().st_mtime_ns for p in files}

    messages = []
    summary = run_seeds(small_config(), [0, 1], out, device="cpu", log=messages.append)
    assert {p.name: p.stat().st_mtime_ns for p in files} == before  # seed 0 not retrained
    assert any(m.startswith("seed 0: already finished") for m in messages)
    assert read_json(out / "seed-1" / "history.json")["seed"] == 1  # seed 1 was trained
    assert [r["seed"] for r in summary["runs"]] == [0, 1] and summary["total"] == 2
    seed_0 = read_json(out / "seed-0" / "history.json")
    assert summary["runs"][0]["final"] == seed_0["epochs"][-1]["test_acc"]
    assert read_json(out / "summary.json") == summary


def test_a_forced_sweep_moves_each_replacement_in_when_it_finishes(tmp_path, mnist, monkeypatch):
    """--force trains each seed beside its old run; seed 0's replacement is moved in as soon as
    it finishes, not only at the end: a sweep stopped during seed 1 loses nothing finished."""
    out = tmp_path / "sweep"
    run_seeds(small_config(), [0, 1], out, device="cpu", log=silent, data=mnist)
    old_1 = (out / "seed-1" / "history.json").read_bytes()
    seed_0_written = (out / "seed-0" / "history.json").stat().st_mtime_ns
    trained, fit = [], sweep_module.fit

    def stop_before_the_second_seed(cfg, *args, **options):
        trained.append(cfg)
        if len(trained) == 2:
            raise KeyboardInterrupt
        return fit(cfg, *args, **options)

    monkeypatch.setattr(sweep_module, "fit", stop_before_the_second_seed)
    with pytest.raises(KeyboardInterrupt):
        run_seeds(small_config(), [0, 1], out, device="cpu", log=silent, force=True, data=mnist)
    assert not (out / "seed-0" / ".next").exists()
    assert (out / "seed-0" / "history.json").stat().st_mtime_ns > seed_0_written  # the new run
    assert (out / "seed-1" / "history.json").read_bytes() == old_1  # the old run, kept


def test_a_finished_seed_made_with_other_settings_is_not_reused(tmp_path, mnist):
    out = tmp_path / "sweep"
    fit_quietly(small_config(seed=0), out / "seed-0", mnist)
    before = (out / "seed-0" / "history.json").read_bytes()
    with pytest.raises(UserError, match=r"seed-0 .*other settings \(epochs, lr\).*--force"):
        run_seeds(small_config(epochs=2, lr=0.05), [0], out, device="cpu", log=silent)
    assert (out / "seed-0" / "history.json").read_bytes() == before
    assert not (out / "summary.json").exists()


def test_a_seed_given_twice_is_refused(tmp_path):
    result = run_cli(
        "seeds", "--seeds", "1", "1", "--out", tmp_path / "sweep", "--device", "cpu", lab=True
    )
    assert result.returncode == 2 and "seed 1 given more than once" in result.stderr
    assert not (tmp_path / "sweep").exists()


def test_print_commands_gives_one_train_command_per_unfinished_seed(tmp_path, mnist):
    cfg = small_config(lr=0.05)
    out = tmp_path / "sweep"
    fit_quietly(replace(cfg, seed=0), seed_folder(out, 0).path, mnist)
    commands = train_commands(cfg, [0, 1, 2], out)
    assert len(commands) == 2  # seed 0 is finished
    assert [shlex.split(c).count("--seed") for c in commands] == [1, 1]
    args = shlex.split(commands[0])
    assert args[:5] == ["python", "-m", "mnist_lib.lab", "train", "--model"] and args[5] == "tiny"
    assert args[args.index("--seed") + 1] == "1" and args[args.index("--lr") + 1] == "0.05"
    assert args[args.index("--out") + 1] == str(out / "seed-1")

    # The printed command, run as it is, trains the very run the sweep would have trained.
    printed = run_cli(
        "seeds",
        *args[4 : args.index("--seed")],
        "--seeds",
        "0",
        "1",
        "2",
        "--out",
        out,
        "--print-commands",
        lab=True,
    )
    assert printed.returncode == 0 and printed.stdout.splitlines() == commands
    trained = run_cli(*args[3:], "--device", "cpu", lab=True)
    assert trained.returncode == 0, trained.stderr
    assert train_commands(cfg, [0, 1, 2], out) == commands[1:]


def test_ablation_commands_cover_every_variant_and_seed(tmp_path):
    commands = ablation_commands([0, 1], tmp_path, only=["recipe", "no-ema"])
    assert len(commands) == 4
    assert all("--val 10000" in c for c in commands)
    assert sum("--ema 0.0" in c for c in commands) == 2


def test_an_ablation_of_some_variants_keeps_the_others(tmp_path, monkeypatch):
    def trained(cfg, seeds, out, *args, **options):
        return summarize([made_history([99.5 - cfg.dropout] * 5, seed=s) for s in seeds])

    monkeypatch.setattr(ablate_module, "run_seeds", trained)
    run_ablation([0, 1], tmp_path, only=["original-dropout"], log=silent)
    run_ablation([0, 1], tmp_path, only=["recipe"], log=silent)
    assert list(load_ablation(tmp_path)) == ["recipe", "original-dropout"]


def test_ablation_table_gives_the_change_against_the_recipe_with_chance_from_all(tmp_path):
    lowest = {
        "recipe": [99.50, 99.52],
        "original-dropout": [99.40, 99.38],
        "no-ema": [99.49, 99.47],
    }
    for name, lows in lowest.items():
        histories = [made_history([98.0] * 15 + [low] * 5, seed=s) for s, low in enumerate(lows)]
        for h in histories:
            write_json(seed_folder(tmp_path / name, h.seed).history, h.to_json())
        write_json(tmp_path / name / "summary.json", summarize(histories))
    write_json(tmp_path / ABLATION, {n: {"changes": {}, "summary": {}} for n in lowest})
    rows = ablation_table(tmp_path).splitlines()
    assert "+0.00" in rows[1] and "2/2" in rows[1]
    # pooled std 0.01414 (each variant's seeds 0.02 apart), 2 seeds: chance 2 * 0.01414 = 0.028
    assert "-0.12" in rows[2] and "1/2" in rows[2] and " yes " in rows[2]
    assert "-0.03" in rows[3] and " yes " in rows[3]
    only = ablation_table(tmp_path, rows=["no-ema"]).splitlines()
    assert len(only) == 2 and only[1] == rows[3]  # the same threshold with fewer rows shown
    with pytest.raises(UserError, match="no ablation results"):
        load_ablation(tmp_path / "nowhere")


def test_design_table_ranks_by_validation_and_names_the_recipe_changes(tmp_path, mnist):
    for name, changes in (
        ("design-e", {}),
        ("design-e-lr", {"lr": 0.05}),
        ("test-design-e", {"val": 0}),
    ):
        cfg = replace(search_recipe("design-e"), epochs=1, limit_train=512, **changes)
        run_seeds(cfg, [0], tmp_path / name, device="cpu", log=silent, data=mnist)
    rows = design_table(tmp_path).splitlines()[2:]
    assert len(rows) == 2 and all("`C8 C16 p d16 d16 d16 d16` | 3,170 |" in r for r in rows)
    changes = {r.split("|")[1].strip(): r.split("|")[4].strip() for r in rows}
    assert changes == {
        "`design-e`": "epochs 1, limit_train 512",
        "`design-e-lr`": "epochs 1, limit_train 512, lr 0.05",
    }


def test_the_summary_covers_every_finished_seed_in_the_folder(tmp_path, mnist):
    out = tmp_path / "sweep"
    run_seeds(small_config(), [0, 1], out, device="cpu", log=silent, data=mnist)
    messages = []
    summary = run_seeds(small_config(), [1], out, device="cpu", log=messages.append, data=mnist)
    assert [r["seed"] for r in summary["runs"]] == [0, 1] and summary["total"] == 2
    assert "summary of" in messages[-1] and messages[-1].endswith("seeds 0, 1")


def test_a_sweep_whose_first_run_fails_leaves_no_folder(tmp_path, mnist):
    with pytest.raises(UserError, match="NaN"):
        run_seeds(
            small_config(lr=1e6, schedule="constant"),
            [0],
            tmp_path / "sweep",
            device="cpu",
            log=silent,
            data=mnist,
        )
    assert not (tmp_path / "sweep").exists()


def test_runs_of_other_settings_in_one_folder_are_not_summarised_together(tmp_path, mnist):
    out = tmp_path / "sweep"
    fit_quietly(small_config(seed=0), out / "seed-0", mnist)
    fit_quietly(small_config(seed=1, lr=0.05), out / "seed-1", mnist)
    with pytest.raises(UserError, match="seed 1 was made with other settings than seed 0"):
        run_seeds(small_config(), [0], out, device="cpu", log=silent, data=mnist)
