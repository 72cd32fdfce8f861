"""Every file the library reads, damaged or foreign, whatever its bytes: one line that names it,
never a traceback, and nothing finished lost. Random bytes, text, and a real file cut short."""

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import (
    damaged,
    each_damaged_copy_is_named,
    fit_quietly,
    made_history,
    one_line,
    run_cli,
    small_config,
)

from mnist_lib.config import UserError
from mnist_lib.data import IDX_MD5, ensure_mnist
from mnist_lib.files import write_json
from mnist_lib.fit import load_trained
from mnist_lib.handwriting import load_image
from mnist_lib.record import RunFolder

pytestmark = pytest.mark.training  # run again in fp32 by `make test`


@pytest.fixture(scope="module")
def finished(tmp_path_factory, mnist) -> Path:
    run_dir = tmp_path_factory.mktemp("damaged") / "run"
    fit_quietly(small_config(epochs=2), run_dir, mnist)
    return run_dir


def test_a_damaged_history_is_named(tmp_path, finished):
    valid = (finished / "history.json").read_bytes()
    for i, data in enumerate(damaged(valid)):
        folder = RunFolder(tmp_path / str(i))
        folder.path.mkdir()
        folder.history.write_bytes(data)
        with pytest.raises(UserError) as error:
            folder.read_history()
        one_line(error, folder.history)


@pytest.mark.parametrize(
    "content",
    [
        {"epochs": "x"},
        {"model": "net", "epochs": [{"epoch": 1}]},
        [],
        {"config": 3},
        made_history([99.0] * 3).to_json() | {"config": {"val": 0}},
    ],
    ids=["epochs-text", "epoch-without-numbers", "a-list", "config-number", "no-config-epochs"],
)
def test_a_history_of_the_wrong_shape_is_named(tmp_path, content):
    folder = RunFolder(tmp_path)
    write_json(folder.history, content)
    with pytest.raises(UserError, match="is not a run's history") as error:
        folder.read_history()
    one_line(error, folder.history)


def test_a_damaged_model_is_named(tmp_path, finished):
    each_damaged_copy_is_named((finished / "model.pt").read_bytes(), tmp_path / "model.pt",
                               load_trained)  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        lambda saved: saved["state_dict"].pop("dense.bias"),
        lambda saved: saved.update(model="net"),  # tiny's weights under net's name
        lambda saved: saved["config"].update(dropout="x"),
        lambda saved: saved.update(model="resnet"),
    ],
    ids=["a-weight-missing", "another-model-s-weights", "dropout-text", "unknown-model"],
)
def test_a_model_file_whose_contents_do_not_fit_is_named(tmp_path, finished, change):
    saved = torch.load(finished / "model.pt", weights_only=True)
    change(saved)
    torch.save(saved, tmp_path / "model.pt")
    with pytest.raises(UserError, match="model.pt (does not hold|is not a trained)") as error:
        load_trained(tmp_path / "model.pt")
    one_line(error, tmp_path / "model.pt")


@pytest.mark.parametrize(
    "change",
    [
        lambda ckpt: ckpt.pop("optimizer"),
        lambda ckpt: [ckpt],  # a list
        lambda ckpt: ckpt["rng"].__delitem__("data"),
        lambda ckpt: ckpt["history"].update(epochs=[{"epoch": "one"}]),
    ],
    ids=["no-optimizer", "a-list", "no-generator-state", "epochs-of-text"],
)
def test_a_checkpoint_whose_contents_do_not_fit_is_named_and_kept(tmp_path, finished, mnist,
                                                                  change):  # fmt: skip
    run = Path(shutil.copytree(finished, tmp_path / "run"))
    (run / "model.pt").unlink()  # an interrupted run, so --resume reads the checkpoint
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save(change(ckpt) or ckpt, run / "checkpoint.pt")
    before = (run / "checkpoint.pt").read_bytes()
    with pytest.raises(UserError, match="checkpoint.pt is not a checkpoint of this run") as error:
        fit_quietly(small_config(epochs=2), run, mnist, resume=True)
    one_line(error, run / "checkpoint.pt")
    assert (run / "checkpoint.pt").read_bytes() == before


def test_damaged_checkpoints_are_named_by_train_resume(tmp_path, finished):
    """Through the command line, as a user meets them: one line and exit status 2."""
    valid = (finished / "checkpoint.pt").read_bytes()
    for i, data in enumerate(damaged(valid)[::3]):
        run = Path(shutil.copytree(finished, tmp_path / str(i)))
        (run / "model.pt").unlink()
        (run / "checkpoint.pt").write_bytes(data)
        result = run_cli("train", "--model", "tiny", "--epochs", "2", "--limit-train", "256",
                         "--limit-test", "256", "--batch-size", "64", "--device", "cpu",
                         "--resume", "--out", run)  # fmt: skip
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert str(run / "checkpoint.pt") in result.stderr


def test_damaged_idx_files_are_named_and_kept(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(ensure_mnist(log=print), raw)
    name = "t10k-labels-idx1-ubyte"
    valid = (raw / name).read_bytes()
    for data in damaged(valid)[::2]:
        (raw / name).write_bytes(data)
        with pytest.raises(UserError) as error:
            ensure_mnist(tmp_path, log=print)
        one_line(error, raw / name)
        assert (raw / name).read_bytes() == data
    assert set(IDX_MD5) == {p.name for p in raw.iterdir()}


def test_damaged_pictures_are_named(tmp_path):
    from PIL import Image

    noise = random.Random(0).randbytes(64 * 64)  # a cut anywhere lands inside the pixels
    Image.frombytes("L", (64, 64), noise).save(tmp_path / "digit.png")
    each_damaged_copy_is_named((tmp_path / "digit.png").read_bytes(), tmp_path / "digit.png",
                               load_image)  # fmt: skip


def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path):
    """Ctrl-C during the imports of start-up (torch takes seconds to load). A stand-in torch that
    raises KeyboardInterrupt as it loads makes the moment certain; a timed SIGINT is not."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise KeyboardInterrupt\n")
    path = os.pathsep.join([str(tmp_path), str(Path(__file__).parents[1])])
    proc = subprocess.run([sys.executable, "-m", "mnist_lib", "train", "--out", "x"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={**os.environ, "PYTHONPATH": path})  # fmt: skip
    assert proc.returncode == 130 and proc.stderr == "interrupted\n", proc.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("data", [b"", b"hello world\n" * 100, random.Random(1).randbytes(5000)],
                         ids=["empty", "text", "random"])  # fmt: skip
def test_predict_names_a_damaged_model_file(tmp_path, data):
    (tmp_path / "model.pt").write_bytes(data)
    from PIL import Image

    digit = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(digit)
    result = run_cli("predict", "--model-file", tmp_path / "model.pt", digit)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert str(tmp_path / "model.pt") in result.stderr
    assert (tmp_path / "model.pt").read_bytes() == data
