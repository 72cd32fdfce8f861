"""The figures: made from data (histories, summaries, tensors), each showing what its title says;
saved byte for byte the same when drawn again."""

import pytest
import torch
from helpers import made_history

from mnist_lib import plot, plot_model, plot_seeds
from mnist_lib.config import TrainConfig

GOOD_LAST_5 = [99.40, 99.45, 99.52, 99.41, 99.60]


def texts(fig) -> str:
    """Every title and label of a figure, in one string."""
    parts = [fig._suptitle.get_text() if fig._suptitle else ""]
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return " | ".join(parts)


def test_accuracy_zoom_marks_the_last_five_and_the_verdict():
    history = made_history([97.0] * 10 + GOOD_LAST_5)
    fig = plot.accuracy_zoom(history)
    ax = fig.axes[0]
    assert "lowest of the last 5: 99.40 %" in ax.get_title() and "pass" in ax.get_title()
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "test accuracy")
    assert list(line.get_ydata()) == history.accs()
    assert [t.get_text() for t in ax.texts] == [f"{a:.2f}" for a in GOOD_LAST_5]


def test_a_validation_run_is_labelled_as_one():
    fig = plot.loss_accuracy(made_history([98.0] * 6, val=10_000))
    assert "val" in " ".join(ln.get_label() for ax in fig.axes for ln in ax.get_lines())


def test_seed_curves_count_the_seeds_that_pass():
    histories = [made_history([98.0] * 10 + GOOD_LAST_5, seed=s) for s in range(3)]
    histories[2].epochs[-1].test_acc = 99.3  # one seed fails
    fig = plot_seeds.seed_curves([histories])
    assert "2/3 seeds pass" in fig.axes[0].get_title()
    assert sum(ln.get_label().startswith("seed") for ln in fig.axes[0].get_lines()) == 3


def test_confusion_matrix_counts():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    preds = torch.tensor([0, 1, 1, 1, 2, 2])
    cm = plot_model.confusion_matrix(labels, preds, classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    assert "2 errors in 6 test images (66.67 %)" in texts(plot_model.confusion_figure(cm))


def test_lr_schedule_shows_the_runs_steps():
    fig = plot.lr_schedule(TrainConfig(epochs=2, batch_size=100, limit_train=1000))
    lrs = fig.axes[0].get_lines()[0].get_ydata()
    assert len(lrs) == 2 * 10 and max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert "2 epochs x 10 steps of 100 images" in fig.axes[0].get_title()


def test_saving_the_same_figure_twice_gives_the_same_bytes(tmp_path):
    history = made_history([97.0] * 10 + GOOD_LAST_5)
    a = plot.save_figure(plot.loss_accuracy(history), tmp_path / "a.png").read_bytes()
    b = plot.save_figure(plot.loss_accuracy(history), tmp_path / "b.png").read_bytes()
    assert a == b and a.startswith(b"\x89PNG") and b"Matplotlib" not in a
