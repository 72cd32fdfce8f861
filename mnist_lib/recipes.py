"""The default recipe of each model: what `train`, `seeds` and the notebooks use unless told otherwise."""

from __future__ import annotations

from dataclasses import replace

from .errors import UserError
from .model import MODELS
from .train import TrainConfig

RECIPES: dict[str, TrainConfig] = {
    "net": TrainConfig(model="net"),
    # Batch 128, twice the steps of 256: 5 of 5 seeds pass (results/sweep-tiny), 4 of 5 at 256 (results/sweep-tiny-b256).
    # One shard: those sweeps normalised each whole batch of 128.
    "tiny": TrainConfig(model="tiny", epochs=15, batch_size=128, shards=1),
}


def recipe(model: str, **overrides) -> TrainConfig:
    """The model's recipe with the given fields replaced (None values are ignored)."""
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    base = RECIPES.get(model, TrainConfig(model=model))
    return replace(base, **{k: v for k, v in overrides.items() if v is not None}).validate()
