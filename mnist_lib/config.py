"""What a run is: `TrainConfig`, each field with its default, its help and its check; the recipes.

This is the only place that validates a run's settings. The command line is generated from the
fields below (their help, their choices), so a new field needs one edit here to appear there.
"""

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .model import MODELS

TRAIN_SIZE, TEST_SIZE = 60_000, 10_000  # images in MNIST's training and test sets
SCHEDULES = ("onecycle", "constant")
PRECISIONS = ("auto", "bf16", "fp32")


class UserError(Exception):
    """Bad input: the command line prints the message as one line and exits with status 2.
    The message says what was wrong and how to fix it."""


def option(
    default: Any,
    help: str,
    choices: tuple[str, ...] = (),
    at_least: float | None = None,
    above: float | None = None,
    below: float | None = None,
) -> Any:
    """A config field with the ``help`` (and ``choices``) that the command line shows, and the
    range its values must lie in."""
    bounds = {"at least": at_least, "above": above, "below": below}
    return field(default=default, metadata={"help": help, "choices": choices, "bounds": bounds})


IN_RANGE = {
    "at least": lambda value, bound: value >= bound,
    "above": lambda value, bound: value > bound,
    "below": lambda value, bound: value < bound,
}


@dataclass
class TrainConfig:
    """Every knob of a run. The defaults are the `net` recipe behind the README's numbers."""

    model: str = option("net", "the network (see mnist_lib.model.MODELS)")
    epochs: int = option(20, "passes over the training images", at_least=1)
    batch_size: int = option(256, "images per SGD step", at_least=1)
    shards: int = option(
        2, "ghost batches per step: BatchNorm normalises each part of a batch on its own",
        at_least=1,
    )  # fmt: skip
    lr: float = option(0.1, "peak learning rate", above=0)
    momentum: float = option(
        0.9, "SGD's Nesterov momentum (one-cycle cycles it 0.95-0.85-0.95)", at_least=0, below=1
    )
    weight_decay: float = option(0.0, "SGD's L2 penalty", at_least=0)
    schedule: str = option(
        "onecycle", "learning rate: warm up 25 %, then cosine down; or constant", SCHEDULES
    )
    dropout: float = option(0.0, "Dropout2d rate after every convolution", at_least=0, below=1)
    label_smoothing: float = option(
        0.0, "share of the target moved from the true class to all", at_least=0, below=1
    )
    rotate: float = option(7.0, "largest random rotation, in degrees", at_least=0)
    shift: float = option(1.5, "largest random shift, in pixels", at_least=0)
    scale: float = option(
        0.0, "largest random zoom, as a fraction (0.1: 1 / U(0.9, 1.1))", at_least=0, below=1
    )
    ema: float = option(
        0.999,
        "cap on the per-step decay of the evaluated weight average (it ramps up as "
        "(1 + n) / (ema_warmup + n) after n steps); 0 = no average",
        at_least=0,
        below=1,
    )
    ema_warmup: int = option(
        10, "how slowly the average's decay ramps up to its cap (see ema)", at_least=1
    )
    seed: int = option(
        1, "initial weights, batch order and augmentation draws", at_least=0, below=2**63
    )
    limit_train: int = option(0, "train on the first N training images only; 0 = all", at_least=0)
    limit_test: int = option(0, "test on the first N test images only; 0 = all", at_least=0)
    val: int = option(
        0, "hold out the last N training images and score on them, not the test set", at_least=0
    )
    precision: str = option(
        "auto", "auto: bf16 where the hardware has it natively, else fp32", PRECISIONS
    )
    eval_batch_size: int = option(500, "images per evaluation batch", at_least=1)

    @property
    def train_images(self) -> int:
        """How many images the run trains on."""
        return self.limit_train or TRAIN_SIZE - self.val

    @property
    def augments(self) -> bool:
        """Whether training images are moved at all (rotated, shifted or zoomed)."""
        return self.rotate > 0 or self.shift > 0 or self.scale > 0

    def validate(self) -> "TrainConfig":
        """Raise UserError, naming the field and the fix, for any value that cannot work."""
        for f in fields(self):
            value, kind = getattr(self, f.name), {int: int, float: int | float}.get(f.type)
            if kind:
                need(
                    isinstance(value, kind) and not isinstance(value, bool)
                    and math.isfinite(value),
                    f"{f.name} must be a {'whole ' * (f.type is int)}number, got {value!r}",
                )  # fmt: skip
            elif f.metadata["choices"]:
                need(
                    value in f.metadata["choices"],
                    f"unknown {f.name} {value!r}: choose one of {', '.join(f.metadata['choices'])}",
                )
            for word, bound in f.metadata["bounds"].items():
                need(
                    bound is None or IN_RANGE[word](value, bound),
                    f"{f.name} must be {word} {bound}, got {value}",
                )
        need(
            self.model in MODELS, f"unknown model {self.model!r}: choose one of {', '.join(MODELS)}"
        )
        need(
            self.shards <= self.batch_size,
            f"shards must be at most the batch size {self.batch_size}, got {self.shards}",
        )
        need(
            self.val < TRAIN_SIZE,
            f"val must leave images to train on: at most {TRAIN_SIZE - 1}, got {self.val}",
        )
        need(
            self.limit_train <= TRAIN_SIZE - self.val and self.limit_test <= TEST_SIZE,
            f"limits must be at most {TRAIN_SIZE - self.val:,} (train) and {TEST_SIZE:,} (test), "
            f"got {self.limit_train:,} and {self.limit_test:,}",
        )
        need(
            self.batch_size <= self.train_images,
            f"batch size {self.batch_size} is larger than the {self.train_images:,} training "
            f"images: pass a batch size of at most {self.train_images}, or train on more images",
        )
        return self


def need(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


# Each course model's recipe: what `train` and the notebooks use unless told otherwise.
RECIPES: dict[str, TrainConfig] = {
    "net": TrainConfig(model="net"),
    # Batch 128 (twice the steps of 256) and whole batches: see the README's validation runs.
    "tiny": TrainConfig(model="tiny", epochs=15, batch_size=128, shards=1),
}


def recipe(model: str, **overrides: Any) -> TrainConfig:
    """The model's recipe (the `net` recipe for a model without one) with ``overrides`` applied;
    overrides that are None are ignored."""
    base = RECIPES.get(model, replace(RECIPES["net"], model=model))
    return replace(base, **{k: v for k, v in overrides.items() if v is not None}).validate()


def saved_config(saved: dict) -> dict:
    """A config as saved in a run's files, with the fields added since then at their defaults."""
    return {**asdict(TrainConfig()), **saved}


def changed_fields(saved: dict, cfg: TrainConfig) -> list[str]:
    """The fields in which a saved config differs from ``cfg``."""
    saved, wanted = saved_config(saved), asdict(cfg)
    return sorted(k for k in wanted if saved.get(k) != wanted[k])
