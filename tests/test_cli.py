"""`python -m mnist_lib`: bad input gives exit status 2 and one line; `train` writes the documented
files; every config field is an option."""

import re

import pytest
import torch
from helpers import run_cli

from mnist_lib.data import normalize
from mnist_lib.device import autocast_dtype
from mnist_lib.files import read_json
from mnist_lib.fit import load_trained
from mnist_lib.train import evaluate

pytestmark = pytest.mark.training  # run again in fp32 by `make test`

HISTORY_KEYS = {"model", "params", "seed", "device", "config", "epochs"}
EPOCH_KEYS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"}
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


# Each message must name the option and the value that was wrong (the wording may change).
@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--model", "nope"], r"model.*'nope'"),
        (["--epochs", "0"], r"epochs.* 0\b"),
        (["--epochs", "-1"], r"epochs.* -1\b"),
        (["--epochs", "abc"], r"epochs.*'abc'"),
        (["--batch-size", "0"], r"batch.size.* 0\b"),
        (["--batch-size", "5000", "--limit-train", "1000"], r"batch size 5000.*1,000 training"),
        (["--lr", "0"], r"lr.* 0\b"),
        (["--lr", "-1"], r"lr.* -1\b"),
        (["--device", "tpu"], r"device.*'tpu'"),
        pytest.param(["--device", "cuda"], r"'cuda'.*no CUDA GPU", marks=no_cuda),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "error",
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, problem):
    result = run_cli("train", *args, "--out", tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert re.search(problem, result.stderr), result.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_seed_sweep_with_no_epoch_budget_is_refused(tmp_path):
    result = run_cli(
        "seeds", "--max-epochs", "0", "--seeds", "0", "--out", tmp_path / "sweep", lab=True
    )
    assert (result.returncode, result.stderr) == (
        2,
        "error: --max-epochs must be at least 1, got 0\n",
    )
    assert not (tmp_path / "sweep").exists()


def test_train_writes_history_and_model(cli_runs, mnist):
    run_dir = cli_runs[0]
    history = read_json(run_dir / "history.json")
    assert set(history) >= HISTORY_KEYS
    assert (history["model"], history["params"], history["seed"], history["device"]) == (
        "net",
        13_154,
        7,
        "cpu",
    )
    assert (
        history["config"]["epochs"],
        history["config"]["limit_train"],
        history["config"]["limit_test"],
    ) == (2, 5000, 1000)
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    for e in history["epochs"]:
        assert set(e) >= EPOCH_KEYS
        assert (
            0 <= e["train_acc"] <= 100
            and 0 <= e["test_acc"] <= 100
            and e["lr"] > 0
            and e["seconds"] > 0
        )
    assert history["epochs"][-1]["test_acc"] > history["epochs"][0]["test_acc"]

    # model.pt holds the weights that were evaluated: they give the last epoch's accuracy again.
    model = load_trained(run_dir / "model.pt")
    amp = autocast_dtype(torch.device("cpu"), history["config"]["precision"])
    _, acc = evaluate(model, normalize(mnist.test_images[:1000]), mnist.test_labels[:1000], amp=amp)
    assert acc == pytest.approx(
        history["epochs"][-1]["test_acc"], abs=0.11
    )  # within one image of 1,000
