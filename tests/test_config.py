"""TrainConfig is the one validator, the recipes are its defaults, and the command line is made
from its fields."""

import re
from dataclasses import asdict, fields

import pytest
from helpers import run_cli

from mnist_lib.__main__ import build_parser, config_from
from mnist_lib.config import RECIPES, TrainConfig, UserError, changed_fields, recipe


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"model": "resnet"}, r"unknown model 'resnet': choose one of net, tiny"),
        ({"epochs": 0}, r"epochs must be at least 1, got 0"),
        ({"epochs": 2.5}, r"epochs must be a whole number, got 2.5"),
        ({"epochs": True}, r"epochs must be a whole number, got True"),
        ({"batch_size": 0}, r"batch_size must be at least 1"),
        ({"shards": 3, "batch_size": 2}, r"shards must be at most the batch size 2, got 3"),
        ({"lr": 0.0}, r"lr must be above 0, got 0.0"),
        ({"lr": float("nan")}, r"lr must be a number, got nan"),
        ({"momentum": 1.0}, r"momentum must be below 1"),
        ({"weight_decay": -0.1}, r"weight_decay must be at least 0"),
        ({"schedule": "cosine"}, r"unknown schedule 'cosine': choose one of onecycle, constant"),
        ({"dropout": 1.0}, r"dropout must be below 1"),
        ({"rotate": -1.0}, r"rotate must be at least 0"),
        ({"shift": -1.0}, r"shift must be at least 0"),
        ({"scale": 1.0}, r"scale must be below 1"),
        ({"ema": 1.0}, r"ema must be below 1"),
        ({"ema_warmup": 0}, "ema_warmup must be at least 1"),
        ({"seed": -1}, r"seed must be at least 0"),
        ({"seed": 2**64}, r"seed must be below 9223372036854775808"),
        ({"val": -5}, r"val must be at least 0"),
        ({"val": 60_000}, r"val must leave images to train on: at most 59999"),
        ({"limit_test": -5}, r"limit_test must be at least 0"),
        ({"limit_test": 10_001}, r"limits must be at most 60,000 \(train\) and 10,000 \(test\)"),
        ({"limit_train": 100}, r"batch size 256 is larger than the 100 training images"),
        ({"precision": "fp16"}, r"unknown precision 'fp16': choose one of auto, bf16, fp32"),
        ({"eval_batch_size": 0}, r"eval_batch_size must be at least 1"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else "",
)
def test_validate_names_the_field_and_the_value(change, problem):
    with pytest.raises(UserError, match=problem):
        TrainConfig(**change).validate()


def test_the_defaults_are_the_net_recipe_and_valid():
    assert TrainConfig().validate() == RECIPES["net"] == recipe("net")


def test_recipe_applies_overrides_and_ignores_none():
    tiny = recipe("tiny", epochs=None, lr=0.05)
    assert (tiny.model, tiny.epochs, tiny.batch_size, tiny.shards, tiny.lr) == (
        "tiny",
        15,
        128,
        1,
        0.05,
    )
    assert recipe("tiny", shards=2).shards == 2
    with pytest.raises(UserError, match="epochs must be at least 1"):
        recipe("net", epochs=0)


def test_changed_fields_fill_in_fields_added_since():
    saved = asdict(TrainConfig())
    del saved["val"]  # a run saved before the field existed
    assert changed_fields(saved, TrainConfig()) == []
    assert changed_fields(saved, TrainConfig(val=10, lr=0.2)) == ["lr", "val"]


def test_every_config_field_is_an_option_with_help_and_default():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    options = {a.dest: a for a in train._actions}
    for f in fields(TrainConfig):
        assert f.name in options, f.name
        assert options[f.name].help and "default:" in options[f.name].help


@pytest.mark.parametrize(
    "cfg",
    [
        recipe("net"),
        recipe("tiny", lr=0.05, seed=3),
        recipe("net", val=10_000, rotate=0.0, schedule="constant"),
    ],
)
def test_command_line_gives_back_the_config(cfg):
    from mnist_lib.lab.experiments.sweep import command_line

    args = build_parser().parse_args(["train", *command_line(cfg), "--out", "x"])
    assert config_from(args) == cfg


def test_an_option_value_argparse_cannot_read_is_one_line():
    result = run_cli("train", "--lr", "fast", "--out", "x")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert re.search(r"--lr.*'fast'", result.stderr)


def test_train_help_lists_the_choices_and_says_where_defaults_come_from():
    result = run_cli("train", "--help")
    text = " ".join(result.stdout.split())
    assert "(default: the model's recipe)" in text
    assert "{onecycle,constant}" in text
