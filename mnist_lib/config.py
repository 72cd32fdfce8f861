"""What a run is: `TrainConfig`, each field with its default, its help and its check; the recipes.

This is the only place that validates a run's settings. The command line is generated from the
fields below (their help, their choices), so a new field needs one edit here to appear there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import UserError
from .model import model_names

SCHEDULES = ("onecycle", "constant")
PRECISIONS = ("auto", "bf16", "fp32")


def option(default: Any, help: str, choices: tuple[str, ...] = ()) -> Any:
    """A config field with the ``help`` (and ``choices``) that the command line shows."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    """Every knob of a run. The defaults are the `net` recipe behind the README's numbers."""

    model: str = option("net", "the network: " + ", ".join(model_names(course_only=True)))
    epochs: int = option(20, "passes over the training images")
    batch_size: int = option(256, "images per SGD step")
    shards: int = option(2, "BatchNorm batches per step; a CPU trains them in parallel")
    lr: float = option(0.1, "peak learning rate")
    momentum: float = option(0.9, "SGD's Nesterov momentum (one-cycle cycles it 0.95-0.85-0.95)")
    weight_decay: float = option(0.0, "SGD's L2 penalty")
    schedule: str = option(
        "onecycle", "learning rate: warm up 25 %, then cosine down; or constant", SCHEDULES
    )
    dropout: float = option(0.0, "Dropout2d rate after every convolution")
    label_smoothing: float = option(0.0, "share of the target moved from the true class to all")
    rotate: float = option(7.0, "largest random rotation, in degrees")
    shift: float = option(1.5, "largest random shift, in pixels")
    scale: float = option(0.0, "largest random zoom, as a fraction (0.1: 1 / U(0.9, 1.1))")
    ema: float = option(
        0.999,
        "cap on the per-step decay of the evaluated weight average (it ramps up as "
        "(1 + n) / (ema_warmup + n) after n steps); 0 = no average",
    )
    ema_warmup: int = option(
        10, "how slowly the average's decay ramps up to its cap (see ema); at least 1"
    )
    seed: int = option(1, "initial weights, batch order and augmentation draws")
    limit_train: int = option(0, "train on the first N training images only; 0 = all")
    limit_test: int = option(0, "test on the first N test images only; 0 = all")
    val: int = option(0, "hold out the last N training images and score on them, not the test set")
    precision: str = option(
        "auto", "auto: bf16 where the hardware has it natively, else fp32", PRECISIONS
    )
    eval_batch_size: int = option(500, "images per evaluation batch")

    @property
    def augments(self) -> bool:
        """Whether training images are moved at all (rotated, shifted or zoomed)."""
        return self.rotate > 0 or self.shift > 0 or self.scale > 0

    def validate(self) -> TrainConfig:
        """Raise UserError, naming the field and the fix, for any value that cannot work."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                need(
                    isinstance(value, int) and not isinstance(value, bool),
                    f"{f.name} must be a whole number, got {value!r}",
                )
            elif f.type == "float":
                need(
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and math.isfinite(value),
                    f"{f.name} must be a number, got {value!r}",
                )
            elif f.metadata["choices"]:
                need(
                    value in f.metadata["choices"],
                    f"unknown {f.name} {value!r}: choose one of "
                    + ", ".join(f.metadata["choices"]),
                )
        need(
            self.model in model_names(),
            f"unknown model {self.model!r}: choose one of "
            + ", ".join(model_names(course_only=True)),
        )
        need(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        need(self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}")
        need(
            1 <= self.shards <= self.batch_size,
            f"shards must be between 1 and the batch size {self.batch_size}, got {self.shards}",
        )
        need(
            self.eval_batch_size >= 1,
            f"eval batch size must be at least 1, got {self.eval_batch_size}",
        )
        need(self.lr > 0, f"learning rate must be > 0, got {self.lr}")
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        need(self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}")
        need(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        need(
            0 <= self.label_smoothing < 1,
            f"label smoothing must be in [0, 1), got {self.label_smoothing}",
        )
        need(self.rotate >= 0, f"rotate must be >= 0, got {self.rotate}")
        need(self.shift >= 0, f"shift must be >= 0, got {self.shift}")
        need(0 <= self.scale < 1, f"scale must be in [0, 1), got {self.scale}")
        need(0 <= self.ema < 1, f"ema decay must be in [0, 1), got {self.ema}")
        need(self.ema_warmup >= 1, f"ema warmup must be at least 1, got {self.ema_warmup}")
        need(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        for name in ("limit_train", "limit_test", "val"):
            need(
                getattr(self, name) >= 0,
                f"{name} must be >= 0 (0 means off), got {getattr(self, name)}",
            )
        return self


def need(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


# Each course model's recipe: what `train`, `seeds` and the notebooks use unless told otherwise.
RECIPES: dict[str, TrainConfig] = {
    "net": TrainConfig(model="net"),
    # Batch 128 (twice the steps of 256) and whole batches: see the README's validation runs.
    "tiny": TrainConfig(model="tiny", epochs=15, batch_size=128, shards=1),
    # TinyNet's, with the peak learning rate that did best on the validation split (README).
    "micro": TrainConfig(model="micro", epochs=15, batch_size=128, shards=1, lr=0.2),
}
RECIPES["micro19"] = replace(RECIPES["micro"], model="micro19")  # the same recipe, 19 channels


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


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def command_line(cfg: TrainConfig) -> list[str]:
    """The `train` options that turn the model's recipe into ``cfg`` (``--model`` always first)."""
    base = recipe(cfg.model)
    args = [option_name("model"), cfg.model]
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.name != "model" and value != getattr(base, f.name):
            args += [option_name(f.name), str(value)]
    return args
