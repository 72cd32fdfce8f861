"""mnist_lib: the small library behind the MNIST-under-15k-parameters notebooks.

The course, in the notebooks' order: `data` and `augment` (01), `model` and `layers` (02),
`config`, `train` and `run` (03), `target` and `plot` (04, 05). Machinery lives apart:
`speed` (how training is made fast), `experiments` (sweeps, ablation, design search, benchmark,
report) and `tools` (paths, the notebook chain, Colab).
"""

from .config import RECIPES, TrainConfig, recipe
from .data import (
    MEAN,
    STD,
    VAL_SIZE,
    DeviceData,
    Mnist,
    ensure_mnist,
    load_mnist,
    normalize,
    pixel_stats,
)
from .device import pick_device
from .errors import UserError
from .model import MODELS, Net, TinyNet, build_model, count_params
from .run import Epoch, History, RunFolder, fit, load_trained
from .target import LAST_N, MAX_EPOCHS, MAX_PARAMS, TARGET_ACC, check_target
from .train import PlainStep, evaluate, predict, train_one_epoch

__all__ = [
    "LAST_N",
    "MAX_EPOCHS",
    "MAX_PARAMS",
    "MEAN",
    "MODELS",
    "RECIPES",
    "STD",
    "TARGET_ACC",
    "VAL_SIZE",
    "DeviceData",
    "Epoch",
    "History",
    "Mnist",
    "Net",
    "PlainStep",
    "RunFolder",
    "TinyNet",
    "TrainConfig",
    "UserError",
    "build_model",
    "check_target",
    "count_params",
    "ensure_mnist",
    "evaluate",
    "fit",
    "load_mnist",
    "load_trained",
    "normalize",
    "pick_device",
    "pixel_stats",
    "predict",
    "recipe",
    "train_one_epoch",
]
