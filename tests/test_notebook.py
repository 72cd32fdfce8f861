"""The notebooks' parameters: checked, and redirected under smoke/ by MNIST_SMOKE=1."""

import re

import pytest

from mnist_lib import UserError
from mnist_lib.tools.chain import SMOKE_DIR
from mnist_lib.tools.notebook import SMOKE, notebook_settings
from mnist_lib.tools.paths import REPO_ROOT


@pytest.mark.parametrize(("name", "value"), [("EPOCHS", "5"), ("SEED", 1.5), ("LIMIT_TRAIN", True)])
def test_non_integer_parameter_is_named(name, value):
    with pytest.raises(UserError, match=rf"{name}\b.*{re.escape(repr(value))}"):
        notebook_settings(**{name: value})


def test_full_run_settings(monkeypatch):
    monkeypatch.delenv("MNIST_SMOKE", raising=False)
    s = notebook_settings(EPOCHS=20, RUN_DIR="results/net")
    assert (s.epochs, s.limit_train, s.limit_test, s.smoke) == (20, 0, 0, False)
    assert s.run_dir == REPO_ROOT / "results" / "net" and s.images_dir == REPO_ROOT / "images"


def test_smoke_shrinks_the_run_and_moves_its_files(monkeypatch):
    monkeypatch.setenv("MNIST_SMOKE", "1")
    s = notebook_settings(EPOCHS=20, RUN_DIR="results/net")
    assert s.smoke and s.epochs == 1 == SMOKE["epochs"]
    assert (s.limit_train, s.limit_test) == (SMOKE["limit_train"], SMOKE["limit_test"])
    assert s.run_dir == SMOKE_DIR / "results" / "net"
    assert s.images_dir == SMOKE_DIR / "images"


def test_smoke_zero_means_off(monkeypatch):
    monkeypatch.setenv("MNIST_SMOKE", "0")
    assert not notebook_settings().smoke
