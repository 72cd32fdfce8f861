"""Nothing finished is lost: a bad --force, a kill, a second process, a NaN score or a damaged
file never costs a finished run, and each ends in one line naming what was wrong."""

import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from helpers import CLI_RUN, fit_quietly, run_cli, silent, small_config, start_cli

import mnist_lib.__main__ as cli
import mnist_lib.fit as fit_module
from mnist_lib.config import UserError
from mnist_lib.files import REPO_ROOT, read_json, write_json
from mnist_lib.fit import fit, load_trained
from mnist_lib.record import RunFolder

pytestmark = pytest.mark.training  # run again in fp32 by `make test`


def snapshot(folder: Path) -> dict[str, bytes]:
    """The run files of ``folder``, byte for byte."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def finished(tmp_path, finished_run) -> Path:
    """A copy of a finished run, to be attacked."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def interrupt_at_epoch(n: int):
    """A log function that stops fit() when epoch ``n`` is logged (before its checkpoint)."""

    def log(message: str) -> None:
        if message.startswith(f"epoch {n:2d}/"):
            raise KeyboardInterrupt

    return log


def test_force_with_a_bad_limit_keeps_the_finished_run(finished):
    before = snapshot(finished)
    args = "train --epochs 2 --limit-train 70000 --force --device cpu".split()
    result = run_cli(*args, "--out", finished)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "limits must be at most" in result.stderr
    assert snapshot(finished) == before and not (finished / ".next").exists()


def test_force_with_a_damaged_data_dir_keeps_the_finished_run(finished, tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    shutil.copytree(REPO_ROOT / "data" / "MNIST" / "raw", raw)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\0" * 100)
    before = snapshot(finished)
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte is corrupt"):
        fit(
            small_config(),
            finished,
            device="cpu",
            data_dir=tmp_path / "data",
            force=True,
            log=silent,
        )
    assert snapshot(finished) == before


def test_an_interrupted_replacement_keeps_the_old_run_until_the_new_one_finishes(finished, mnist):
    before = snapshot(finished)
    replacement = small_config(epochs=2, ema=0.999)
    with pytest.raises(KeyboardInterrupt):
        fit(
            replacement,
            finished,
            device="cpu",
            force=True,
            log=interrupt_at_epoch(2),
            data=mnist,
        )
    assert snapshot(finished) == before  # the finished run is whole...
    assert (finished / ".next" / "checkpoint.pt").exists()  # ...and the new one can resume

    history = fit(
        replacement,
        finished,
        device="cpu",
        force=True,
        resume=True,
        log=silent,
        data=mnist,
    )
    assert len(history.epochs) == 2 and not (finished / ".next").exists()
    assert read_json(finished / "history.json") == history.to_json()
    assert RunFolder(finished).is_finished()


def test_a_replacement_killed_while_moving_in_is_completed_by_the_next_command(finished, mnist):
    staged = finished / ".next"
    fit_quietly(small_config(seed=5), staged, mnist)
    new = snapshot(staged)
    os.replace(staged / "model.pt", finished / "model.pt")  # killed after the first move
    messages = []
    with pytest.raises(UserError, match="already holds a finished run"):
        fit(
            small_config(seed=5),
            finished,
            device="cpu",
            log=messages.append,
            data=mnist,
        )
    assert any("moving in the finished run" in m for m in messages)
    assert snapshot(finished) == new and not staged.exists()


def test_a_folder_in_use_is_refused_with_the_process_that_holds_it(tmp_path):
    out = tmp_path / "run"
    first = start_cli(
        "train",
        *CLI_RUN,
        "--limit-train",
        "20000",
        "--epochs",
        "4",
        "--out",
        out,
        log=tmp_path / "first.log",
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / ".lock").exists():
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the first run never locked its folder"
            time.sleep(0.05)
        for extra in ([], ["--force"], ["--seed", "8"]):
            second = run_cli("train", *CLI_RUN, "--epochs", "1", *extra, "--out", out)
            assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
            assert re.search(rf"in use by process {first.pid}\b.*mnist_lib train", second.stderr)
        assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()
    finally:
        if first.poll() is None:
            first.kill()
    history = read_json(out / "history.json")
    assert history["seed"] == 7 and len(history["epochs"]) == 4  # the first run's, whole
    assert not (out / ".lock").exists()


def test_a_nan_score_stops_the_run_and_is_never_written(tmp_path, mnist, monkeypatch):
    scores = iter([(0.5, 90.0), (math.nan, 10.0)])
    monkeypatch.setattr(fit_module, "evaluate", lambda *args: next(scores))
    run_dir = tmp_path / "run"
    with pytest.raises(UserError, match=r"loss became NaN/inf in epoch 2\b.*epoch 1\b"):
        fit_quietly(small_config(epochs=2), run_dir, mnist)
    assert [e["epoch"] for e in read_json(run_dir / "history.json")["epochs"]] == [1]


def test_the_issues_nan_command_exits_2_and_leaves_strict_json(tmp_path):
    run_dir = tmp_path / "run"
    args = "train --epochs 2 --limit-train 512 --limit-test 256 --lr 1e6 --device cpu"
    result = run_cli(*args.split(), "--out", run_dir)
    assert result.returncode == 2 and "NaN" in result.stderr, result.stderr
    if (run_dir / "history.json").exists():
        read_json(run_dir / "history.json")  # strict: NaN would be refused


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_unwritable_out_is_refused_before_training():
    """/proc/self exists and cannot be written, even by root."""
    result = run_cli("train", *CLI_RUN, "--epochs", "1", "--out", "/proc/self")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot write to the run directory /proc/self" in result.stderr
    assert "epoch" not in result.stdout


def test_a_failed_check_leaves_no_empty_folder(tmp_path, mnist):
    with pytest.raises(UserError, match="limits"):
        fit_quietly(small_config(limit_train=70_000), tmp_path / "new", mnist)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", [["train"], ["train", "--resume"], ["seeds", "--seeds", "0"]])
def test_a_truncated_history_is_named(tmp_path, finished_run, command):
    out = tmp_path / "sweep"
    folder = out / "seed-0" if command[0] == "seeds" else out
    shutil.copytree(finished_run, folder)
    text = (folder / "history.json").read_text()
    (folder / "history.json").write_text(text[: len(text) // 2])
    lab = command[0] == "seeds"
    result = run_cli(*command, "--model", "tiny", "--out", out, "--device", "cpu", lab=lab)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"{folder / 'history.json'}" in result.stderr and "truncated" in result.stderr


def test_a_truncated_model_is_named(finished):
    data = (finished / "model.pt").read_bytes()
    (finished / "model.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(UserError, match=rf"cannot read {finished}/model.pt .*truncated"):
        load_trained(finished / "model.pt")


def test_a_file_with_pickled_objects_is_refused_without_suggesting_to_trust_it(finished, mnist):
    torch.save({"config": {}, "trap": Path("x")}, finished / "checkpoint.pt")  # not plain data
    (finished / "model.pt").unlink()  # an interrupted run, so --resume reads the checkpoint
    with pytest.raises(UserError) as error:
        fit_quietly(small_config(ema=0.999), finished, mnist, resume=True)
    assert "checkpoint.pt" in str(error.value) and "not loaded" in str(error.value)
    assert "weights_only" not in str(error.value)


def test_leftovers_of_a_killed_write_are_cleaned_and_ignored(finished, mnist, monkeypatch):
    leftover = finished / ".history.json.k1ll3d.tmp"
    leftover.write_text('{"epochs": [')
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    fit_quietly(small_config(ema=0.999, epochs=2), finished, mnist, force=True)
    assert not leftover.exists() and synced  # written files are flushed before the rename
    ignored = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "check-ignore", "-q", "results/net/.history.json.k1ll3d.tmp"]
    )
    assert ignored.returncode == 0


def test_write_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"test_loss": math.nan})
    assert not list(tmp_path.iterdir())


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    def stop(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_predict", stop)
    assert cli.main(["predict", "x.png"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_a_run_folder_may_be_named_by_a_string(tmp_path):
    assert RunFolder(str(tmp_path)).history == tmp_path / "history.json"


def test_a_run_killed_after_its_last_checkpoint_is_finished_by_resume(finished, mnist):
    weights = load_trained(finished).state_dict()
    epochs = RunFolder(finished).read_history().epochs
    (finished / "model.pt").unlink()  # killed after the last checkpoint, before model.pt
    (finished / "history.json").unlink()
    history = fit_quietly(small_config(ema=0.999), finished, mnist, resume=True)
    assert RunFolder(finished).is_finished()
    assert RunFolder(finished).read_history().epochs == epochs == history.epochs
    reloaded = load_trained(finished).state_dict()
    assert all(torch.equal(weights[k], reloaded[k]) for k in weights)


def test_a_checkpoint_is_not_taken_for_a_trained_model(finished):
    with pytest.raises(UserError, match=r"checkpoint.pt is not a trained model .*model.pt"):
        load_trained(finished / "checkpoint.pt")


def stop_at(n: int):
    """A log function that stops fit() when epoch ``n`` is logged, or (``n`` 0) at its start."""

    def log(message: str) -> None:
        if message.startswith("training" if n == 0 else f"epoch {n:2d}/"):
            raise KeyboardInterrupt

    return log


def test_ctrl_c_in_the_first_epoch_says_nothing_was_kept(tmp_path, mnist):
    with pytest.raises(KeyboardInterrupt, match="no epoch had finished, so nothing was kept"):
        fit_quietly(small_config(epochs=2), tmp_path / "run", mnist, log=stop_at(0))
    assert not (tmp_path / "run").exists()


def test_ctrl_c_later_names_the_epochs_kept_and_how_to_go_on(tmp_path, mnist):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt, match=r"epochs 1-1 are in .*checkpoint.pt: .*--resume"):
        fit_quietly(small_config(epochs=3), run, mnist, log=stop_at(2))


def test_ctrl_c_in_a_replacement_says_the_finished_run_is_kept(finished, mnist):
    with pytest.raises(
        KeyboardInterrupt, match=rf"nothing was kept; the finished run in {finished}"
    ):
        fit_quietly(small_config(epochs=2), finished, mnist, force=True, log=stop_at(0))
    with pytest.raises(KeyboardInterrupt, match=r"epochs 1-1 are in .*\.next.*--force --resume"):
        fit_quietly(small_config(epochs=2), finished, mnist, force=True, log=stop_at(2))
    with pytest.raises(
        UserError, match=r"finished run.*a replacement stopped in \.next/ continues"
    ):
        fit_quietly(small_config(epochs=2), finished, mnist)


def test_a_stopped_replacement_of_an_interrupted_run_is_mentioned(tmp_path, mnist):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit_quietly(small_config(epochs=3), run, mnist, log=stop_at(2))  # an interrupted run
    with pytest.raises(KeyboardInterrupt):  # its replacement, stopped too
        fit_quietly(small_config(epochs=3), run, mnist, force=True, log=stop_at(2))
    with pytest.raises(UserError, match=r"interrupted run.*a replacement stopped in \.next/"):
        fit_quietly(small_config(epochs=3), run, mnist)


def test_force_with_resume_and_nothing_to_resume_is_refused(tmp_path, mnist):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit_quietly(small_config(epochs=3), run, mnist, log=stop_at(2))  # an interrupted run
    before = snapshot(run)
    with pytest.raises(
        UserError, match="no stopped replacement .* --resume alone .* --force alone"
    ):
        fit_quietly(small_config(epochs=3), run, mnist, force=True, resume=True)
    assert snapshot(run) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_out_whose_parent_cannot_be_written_is_one_line():
    result = run_cli("train", *CLI_RUN, "--epochs", "1", "--out", "/proc/self/a/b")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot create /proc/self/a/b" in result.stderr
