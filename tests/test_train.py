"""Training: it learns, it is exact, it reproduces, it resumes, and it never loses a good file."""

import re
import signal
import time

import pytest
import torch
from helpers import CLI_RUN, fit_quietly, run_cli, silent, small_config, start_cli, without_timing

import mnist_lib.train as train_module
from mnist_lib.augment import affine
from mnist_lib.config import TrainConfig, UserError
from mnist_lib.data import DeviceData
from mnist_lib.files import read_json
from mnist_lib.fit import fit, load_trained
from mnist_lib.model import Net
from mnist_lib.train import evaluate, make_scheduler, train_one_epoch, training_loss

pytestmark = pytest.mark.training  # run again in fp32 by `make test`

CPU = torch.device("cpu")
RUN_FILES = ["checkpoint.pt", "history.json", "model.pt"]


def interrupt_in_epoch_2(cfg: TrainConfig, run_dir, data) -> None:
    """fit() stopped in its second epoch, after the first epoch's checkpoint: what Ctrl-C leaves."""
    epoch_lines = []

    def log(message: str) -> None:
        if message.startswith("epoch"):
            epoch_lines.append(message)
            if len(epoch_lines) == 2:  # epoch 2 is trained but its checkpoint not yet written
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(cfg, run_dir, device="cpu", log=log, data=data)


def test_one_batch_overfits(mnist):
    cfg = TrainConfig(
        batch_size=64, lr=0.05, schedule="constant", dropout=0.0, ema=0.0, rotate=0, shift=0
    )
    data = DeviceData.from_mnist(mnist, CPU, limit_train=64, limit_test=64)  # one batch: 64 images
    torch.manual_seed(0)
    model = Net(dropout=0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch=1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):  # one step per "epoch"
        stats = train_one_epoch(model, data, optimizer, scheduler, cfg, generator)
        if stats["train_loss"] < 0.05 and stats["train_acc"] == 100.0:
            break
    assert stats["train_loss"] < 0.05 and stats["train_acc"] == 100.0


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, mnist):
    """Net trained for 2 epochs on 2,000 images (62 steps each), tested on 1,000."""
    cfg = TrainConfig(
        epochs=2, limit_train=2000, limit_test=1000, batch_size=32, ema=0.0, rotate=0, shift=0
    )
    run_dir = tmp_path_factory.mktemp("short") / "run"
    fit_quietly(cfg, run_dir, mnist)
    return run_dir


def test_short_run_learns(short_run):
    first, last = read_json(short_run / "history.json")["epochs"]
    assert last["test_acc"] > 80  # chance is 10 %
    assert last["train_loss"] < first["train_loss"] < 2.31  # 2.30 = ln 10, a uniform guess


def test_evaluate_matches_a_per_image_reference(mnist, short_run):
    model = load_trained(short_run / "model.pt")
    data = DeviceData.from_mnist(mnist, CPU, limit_train=1, limit_test=200)
    with torch.no_grad():
        log_probs = torch.cat([model(x[None]) for x in data.eval_x])  # (200, 10), one at a time
    losses = -log_probs[torch.arange(200), data.eval_y]
    accuracy = 100.0 * (log_probs.argmax(1) == data.eval_y).float().mean().item()
    for batch_size in (200, 64, 7):
        loss, acc = evaluate(model, data.eval_x, data.eval_y, batch_size=batch_size, amp=None)
        assert loss == pytest.approx(losses.mean().item(), rel=1e-5)
        assert acc == pytest.approx(accuracy)
    assert (
        50 < accuracy < 100
    )  # a model that has learned something, so the comparison means something


@pytest.mark.parametrize("total", [1, 2, 3, 4, 5, 8, 234])
def test_one_cycle_schedule(total):
    """Warm up from lr/10 to lr, anneal to lr/1000, whatever the number of steps (OneCycleLR
    divides by 0 at exactly 4)."""
    cfg = TrainConfig(epochs=1, lr=0.1)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr, momentum=0.9)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch=total)
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(total):  # as many steps as fit() takes
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert all(0 < lr <= cfg.lr + 1e-12 for lr in lrs)
    assert lrs[-2] == pytest.approx(cfg.lr / 1000)  # the last step trains at the lowest rate
    if total >= 8:
        assert lrs[0] == pytest.approx(cfg.lr / 10) and max(lrs) == pytest.approx(cfg.lr, rel=1e-3)


def test_cli_runs_reproduce(cli_runs):
    a, b = (read_json(d / "history.json") for d in cli_runs)
    assert len(a["epochs"]) == 2
    assert without_timing(a) == without_timing(b)
    assert a["epochs"][0]["seconds"] > 0


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    args = ["train", *CLI_RUN, "--epochs", "3"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    reference = start_cli(*args, "--out", whole, log=tmp_path / "whole.log")
    victim = start_cli(*args, "--out", killed, log=tmp_path / "killed.log")
    try:
        history = killed / "history.json"
        deadline = time.monotonic() + 300
        while not (history.is_file() and read_json(history)["epochs"]):
            assert victim.poll() is None, (tmp_path / "killed.log").read_text()
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait() == -signal.SIGKILL
        assert len(read_json(history)["epochs"]) < 3 and not (killed / "model.pt").exists()

        resumed = run_cli(*args, "--out", killed, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert "resuming" in resumed.stdout
        assert reference.wait(timeout=600) == 0, (tmp_path / "whole.log").read_text()
    finally:
        for proc in (victim, reference):
            if proc.poll() is None:
                proc.kill()
    assert without_timing(read_json(history)) == without_timing(read_json(whole / "history.json"))
    weights = [torch.load(d / "model.pt", weights_only=True)["state_dict"] for d in (killed, whole)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1])


def test_finished_run_is_not_overwritten(finished_run, mnist):
    before = {name: (finished_run / name).read_bytes() for name in RUN_FILES}
    with pytest.raises(UserError, match="finished run.*--force"):
        fit_quietly(small_config(ema=0.999), finished_run, mnist)
    assert {name: (finished_run / name).read_bytes() for name in RUN_FILES} == before


def test_resume_refuses_another_models_checkpoint(tmp_path, mnist):
    run_dir = tmp_path / "net-run"
    interrupt_in_epoch_2(
        TrainConfig(epochs=2, limit_train=128, limit_test=128, batch_size=64), run_dir, mnist
    )
    checkpoint = (run_dir / "checkpoint.pt").read_bytes()
    result = run_cli("train", "--model", "tiny", "--resume", "--out", run_dir, "--device", "cpu")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and re.search(r"other settings \(.*model", result.stderr)
    assert (run_dir / "checkpoint.pt").read_bytes() == checkpoint


def test_exploding_loss_stops_with_the_epoch(tmp_path, mnist):
    """16 steps at lr 1e12 overflow within the first epoch, in fp32 as in bf16."""
    cfg = TrainConfig(
        lr=1e12,
        schedule="constant",
        epochs=2,
        limit_train=512,
        limit_test=128,
        batch_size=32,
        ema=0.0,
    )
    with pytest.raises(UserError, match=r"NaN.* epoch 1\b.*learning rate") as error:
        fit_quietly(cfg, tmp_path / "run", mnist)
    assert "epoch 0" not in str(error.value)  # no checkpoint to promise: none was written
    assert not (tmp_path / "run" / "model.pt").exists()


def test_nan_in_epoch_2_keeps_epoch_1(tmp_path, mnist, monkeypatch):
    """Poison the batches from epoch 2 on: the error names epoch 2 and epoch 1's files stay good."""
    cfg = small_config(epochs=2, limit_train=128, shards=2)  # two steps per epoch
    calls = []

    def poisoned(images, thetas):
        calls.append(1)
        return affine(images, thetas) * (float("nan") if len(calls) > 2 else 1.0)

    monkeypatch.setattr(train_module, "affine", poisoned)
    run_dir = tmp_path / "run"
    with pytest.raises(UserError, match=r"NaN.* epoch 2\b.*checkpoint of epoch 1\b"):
        fit_quietly(cfg, run_dir, mnist)
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert [e["epoch"] for e in checkpoint["history"]["epochs"]] == [1]
    assert [e["epoch"] for e in read_json(run_dir / "history.json")["epochs"]] == [1]
    assert all(
        torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point()
    )
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "history.json"]


def test_run_files_are_plain_data_and_complete(finished_run):
    checkpoint = torch.load(finished_run / "checkpoint.pt", weights_only=True)  # no pickled code
    saved = torch.load(finished_run / "model.pt", weights_only=True)
    history = read_json(finished_run / "history.json")
    assert checkpoint["config"] == history["config"] == saved["config"]
    assert checkpoint["history"]["epochs"] == history["epochs"]
    assert set(checkpoint) >= {"model", "ema", "optimizer", "scheduler", "rng"}
    assert (
        sorted(p.name for p in finished_run.iterdir()) == RUN_FILES
    )  # atomic writes leave no .tmp


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_one_epoch_on_the_gpu(tmp_path, mnist):
    data = DeviceData.from_mnist(mnist, torch.device("cuda"), limit_train=20_000, limit_test=2_000)
    assert data.train_x.is_cuda and data.train_y.is_cuda and data.eval_x.is_cuda
    cfg = TrainConfig(epochs=1, limit_train=20_000, limit_test=2_000, batch_size=64)
    history = fit(cfg, tmp_path / "run", device="cuda", log=silent, data=mnist)
    assert history.device.startswith("cuda")
    assert history.epochs[-1].test_acc > 95


def test_label_smoothing_is_cross_entropy_with_smoothed_targets():
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(8, 10), dim=1)
    y = torch.randint(0, 10, (8,))
    assert torch.equal(training_loss(log_probs, y), torch.nn.functional.nll_loss(log_probs, y))
    targets = torch.full((8, 10), 0.1 / 10)
    targets[torch.arange(8), y] += 0.9
    by_hand = -(targets * log_probs).sum(1).mean()
    torch.testing.assert_close(training_loss(log_probs, y, 0.1), by_hand)
