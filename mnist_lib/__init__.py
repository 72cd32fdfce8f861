"""mnist_lib: the small library behind the MNIST-under-15k-parameters notebooks."""

from .ablate import ABLATIONS, ablation_table, load_ablation
from .data import MEAN, STD, Mnist, ensure_mnist, load_mnist, normalize, pixel_stats
from .device import pick_device
from .errors import UserError
from .model import MODELS, Net, TinyNet, build_model, count_params
from .recipes import recipe
from .sweep import load_summary, run_seeds, summary_table
from .target import LAST_N, MAX_EPOCHS, MAX_PARAMS, TARGET_ACC, check_target
from .train import DeviceData, TrainConfig, evaluate, fit, load_trained, predict, train_one_epoch

__all__ = [
    "ABLATIONS", "LAST_N", "MAX_EPOCHS", "MAX_PARAMS", "MEAN", "MODELS", "STD", "TARGET_ACC", "DeviceData", "Mnist", "Net",
    "TinyNet", "TrainConfig", "UserError", "ablation_table", "build_model", "check_target", "count_params", "ensure_mnist",
    "evaluate", "fit", "load_ablation", "load_mnist", "load_summary", "load_trained", "normalize", "pick_device", "pixel_stats",
    "predict", "recipe", "run_seeds", "summary_table", "train_one_epoch",
]
