"""Training: one config, a flat `train_one_epoch`, a separate `evaluate`, and `fit` that
writes a checkpoint after every epoch so a run can be resumed.

Files in a run directory:
- checkpoint.pt   everything needed to resume (model, EMA, optimizer, scheduler, RNG, history);
- history.json    the per-epoch numbers, rewritten after every epoch;
- model.pt        the final weights (the EMA copy when EMA is on), written when the run ends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .augment import random_thetas
from .data import Mnist, load_mnist, normalize
from .device import autocast, autocast_dtype, hardware, memory_format, pick_device
from .ema import Ema
from .errors import UserError
from .files import load_torch, read_json, save_torch, write_json
from .model import build_model, count_params
from .shards import ShardedStep

SCHEDULES = ("onecycle", "constant")


@dataclass
class TrainConfig:
    """Every knob of a run. The defaults are the recipe behind the README's numbers."""

    model: str = "net"  # a name in mnist_lib.model.MODELS
    epochs: int = 20
    batch_size: int = 256
    shards: int = 2  # BatchNorm batches per step (mnist_lib.shards); on a CPU they run in parallel
    lr: float = 0.1  # peak learning rate of the one-cycle schedule (or the constant one)
    momentum: float = 0.9  # SGD with Nesterov momentum (one-cycle instead cycles it 0.95 -> 0.85 -> 0.95)
    weight_decay: float = 0.0
    schedule: str = "onecycle"  # "onecycle": warm up 25 %, cosine down; "constant"
    dropout: float | None = 0.0  # Dropout2d rate; None keeps the model's own (the seed's 0.05)
    rotate: float = 7.0  # max rotation, degrees
    shift: float = 1.5  # max shift, pixels
    ema: float = 0.999  # per-step decay of the weight average that is evaluated; 0 = off
    seed: int = 1
    limit_train: int = 0  # use only the first N training images; 0 = all 60,000
    limit_test: int = 0  # use only the first N test images; 0 = all 10,000
    precision: str = "auto"  # "auto": bf16 autocast where the hardware has it; "bf16"; "fp32"
    eval_batch_size: int = 500  # larger batches are slower on a CPU (their activations leave the caches)

    def validate(self) -> TrainConfig:
        """Raise UserError, with the fix, for any value that cannot work."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise UserError(message)

        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int):
                need(isinstance(value, int) and not isinstance(value, bool),
                     f"{f.name} must be a whole number, got {value!r}")
            if f.type in ("float", float):
                need(isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value),
                     f"{f.name} must be a number, got {value!r}")
        build_model(self.model)  # raises on an unknown name
        need(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        need(self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}")
        need(1 <= self.shards <= self.batch_size, f"shards must be between 1 and the batch size {self.batch_size}, "
             f"got {self.shards}")
        need(self.eval_batch_size >= 1, f"eval batch size must be at least 1, got {self.eval_batch_size}")
        need(self.lr > 0, f"learning rate must be > 0, got {self.lr}")
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        need(self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}")
        need(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        need(self.dropout is None or 0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        need(self.rotate >= 0 and self.shift >= 0, "rotate and shift must be >= 0")
        need(0 <= self.ema < 1, f"ema decay must be in [0, 1), got {self.ema}")
        need(self.limit_train >= 0 and self.limit_test >= 0, "limits must be >= 0 (0 means all)")
        need(self.precision in ("auto", "bf16", "fp32"), f"unknown precision {self.precision!r}: choose auto, bf16 or fp32")
        return self


@dataclass
class DeviceData:
    """Normalised tensors on the training device: images (N, 1, 28, 28), labels (N,)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @classmethod
    def from_mnist(cls, data: Mnist, device: torch.device, limit_train: int = 0, limit_test: int = 0) -> DeviceData:
        n_train = limit_train or len(data.train_labels)
        n_test = limit_test or len(data.test_labels)
        if n_train > len(data.train_labels) or n_test > len(data.test_labels):
            raise UserError(f"limits must be at most {len(data.train_labels)} (train) and {len(data.test_labels)} (test)")
        return cls(
            normalize(data.train_images[:n_train]).to(device),
            data.train_labels[:n_train].to(device),
            normalize(data.test_images[:n_test]).to(device),
            data.test_labels[:n_test].to(device),
        )


def make_model(cfg: TrainConfig, device: torch.device) -> nn.Module:
    """The config's model on ``device``, in the memory layout that is fastest there."""
    return build_model(cfg.model, cfg.dropout).to(device, memory_format=memory_format(device))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.momentum > 0, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    total = cfg.epochs * steps_per_epoch
    # OneCycleLR divides by zero when its warm-up ends exactly at step 0 (pct_start * total == 1).
    pct_start = 0.25 if total != 4 else 0.5
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=total, pct_start=pct_start,
        div_factor=10, final_div_factor=100,
    )


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches only (the leftover images change every epoch); at least one step."""
    return max(1, n_train // batch_size)


def train_one_epoch(
    model: nn.Module, data: DeviceData, optimizer: torch.optim.Optimizer, scheduler, cfg: TrainConfig,
    generator: torch.Generator, amp: torch.dtype | None, ema: Ema | None = None,
    progress: str | None = None,
) -> dict:
    """One pass over the training images in a random order. Returns the epoch's mean loss,
    accuracy (%) and, if the loss stopped being finite, the first such step (else -1).

    Each batch is split into ``cfg.shards`` BatchNorm batches (mnist_lib.shards). Sums stay on
    the device and are read once at the end: no host sync per step.
    """
    model.train()
    n = len(data.train_y)
    bs = min(cfg.batch_size, n)
    steps = steps_per_epoch(n, bs)
    order = torch.randperm(n, generator=generator).to(data.train_x.device)
    loss_sum = torch.zeros((), device=data.train_x.device)
    correct = torch.zeros((), dtype=torch.long, device=data.train_x.device)
    first_bad = torch.full((), -1, dtype=torch.long, device=data.train_x.device)
    augment = cfg.rotate > 0 or cfg.shift > 0
    with ShardedStep(model, min(cfg.shards, bs), amp) as forward_backward:
        for step in tqdm(range(steps), desc=progress, leave=False, disable=progress is None):
            idx = order[step * bs : (step + 1) * bs]
            x, y = data.train_x[idx], data.train_y[idx]  # (B, 1, 28, 28), (B,)
            thetas = random_thetas(len(y), cfg.rotate, cfg.shift, generator) if augment else None
            loss, batch_correct = forward_backward(x, y, thetas)  # augments each shard in its thread
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update()
            loss_sum += loss * len(y)
            correct += batch_correct
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), step, first_bad)
    seen = steps * bs
    return {"train_loss": loss_sum.item() / seen, "train_acc": 100.0 * correct.item() / seen,
            "first_bad_step": int(first_bad.item())}


@torch.inference_mode()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 500, amp: torch.dtype | None = None) -> tuple[float, float]:
    """Mean loss and accuracy (%) of ``model`` on normalised images, in large batches."""
    model.eval()
    loss_sum = torch.zeros((), device=images.device)
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    for start in range(0, len(labels), batch_size):
        x, y = images[start : start + batch_size], labels[start : start + batch_size]
        with autocast(images.device, amp):
            log_probs = model(x).float()  # (B, 10)
        loss_sum += F.nll_loss(log_probs, y, reduction="sum")
        correct += (log_probs.argmax(1) == y).sum()
    return loss_sum.item() / len(labels), 100.0 * correct.item() / len(labels)


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Class probabilities (N, 10) of normalised images, in fp32."""
    model.eval()
    return torch.cat([model(images[i : i + batch_size]).float().exp() for i in range(0, len(images), batch_size)])


def rng_state(generator: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(generator: torch.Generator, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def is_finished(run_dir: Path) -> bool:
    history = run_dir / "history.json"
    if not (history.is_file() and (run_dir / "model.pt").is_file()):
        return False
    h = read_json(history)
    return len(h["epochs"]) >= h["config"]["epochs"]


def prepare_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    """Refuse to overwrite a finished or interrupted run unless asked to."""
    if force:
        for name in ("checkpoint.pt", "history.json", "model.pt"):
            (run_dir / name).unlink(missing_ok=True)
        return
    if is_finished(run_dir):
        raise UserError(f"{run_dir} already holds a finished run: pass --force to overwrite it, or choose another --out")
    if (run_dir / "checkpoint.pt").exists() and not resume:
        raise UserError(f"{run_dir} holds an interrupted run: pass --resume to continue it, or --force to start over")


def load_checkpoint(path: Path, cfg: TrainConfig) -> dict:
    try:
        ckpt = load_torch(path)
    except Exception as exc:
        raise UserError(f"cannot read the checkpoint {path} ({type(exc).__name__}): delete it or pass --force") from None
    saved = ckpt.get("config", {})
    if saved.get("model") != cfg.model:
        raise UserError(f"{path} is a checkpoint of model {saved.get('model')!r}, not {cfg.model!r}: "
                        "use the same --model, or another --out")
    if saved != asdict(cfg):
        changed = sorted(k for k in saved if saved.get(k) != asdict(cfg).get(k))
        raise UserError(f"{path} was made with other settings ({', '.join(changed)}): resume with the same ones, or --force")
    return ckpt


def fit(
    cfg: TrainConfig,
    run_dir: str | Path,
    device: str = "auto",
    data_dir: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    data: Mnist | None = None,
) -> dict:
    """Train ``cfg`` into ``run_dir`` and return the history dict (also in history.json)."""
    cfg.validate()
    run_dir = Path(run_dir)
    dev = pick_device(device)
    amp = autocast_dtype(dev, cfg.precision)
    prepare_run_dir(run_dir, resume, force)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the run directory {run_dir} ({exc.strerror}): choose another --out") from None
    data = data or load_mnist(data_dir, log=log)
    dd = DeviceData.from_mnist(data, dev, cfg.limit_train, cfg.limit_test)

    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)  # data order and augmentation, on the CPU
    model = make_model(cfg, dev)
    ema = Ema(model, cfg.ema) if cfg.ema else None
    optimizer = make_optimizer(model, cfg)
    steps = steps_per_epoch(len(dd.train_y), min(cfg.batch_size, len(dd.train_y)))
    scheduler = make_scheduler(optimizer, cfg, steps)
    history = {"model": cfg.model, "params": count_params(model), "seed": cfg.seed, "device": str(dev),
               "precision": str(amp).replace("torch.", "") if amp else "float32",
               "torch": torch.__version__, "hardware": hardware(dev),
               "config": asdict(cfg), "epochs": []}

    ckpt_path = run_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, cfg)
        model.load_state_dict(ckpt["model"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(generator, ckpt["rng"])
        history["epochs"] = ckpt["history"]["epochs"]
        log(f"resuming {run_dir} after epoch {len(history['epochs'])}")
    eval_model = ema.module if ema is not None else model

    log(f"training {cfg.model} ({history['params']:,} params) on {dev} ({history['precision']}), "
        f"{len(dd.train_y):,} train / {len(dd.test_y):,} test images, seed {cfg.seed}")
    for epoch in range(len(history["epochs"]) + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        stats = train_one_epoch(model, dd, optimizer, scheduler, cfg, generator, amp, ema,
                                progress=f"epoch {epoch}/{cfg.epochs}" if progress else None)
        if stats.pop("first_bad_step") >= 0 or not math.isfinite(stats["train_loss"]):
            kept = f"the checkpoint of epoch {epoch - 1} in {run_dir} is kept" if epoch > 1 else "no epoch finished"
            raise UserError(f"the loss became NaN/inf in epoch {epoch}: the learning rate {cfg.lr} is too high; {kept}")
        test_loss, test_acc = evaluate(eval_model, dd.test_x, dd.test_y, cfg.eval_batch_size, amp)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        row = {"epoch": epoch, **stats, "test_loss": test_loss, "test_acc": test_acc,
               "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - t0}
        history["epochs"].append(row)
        log(f"epoch {epoch:2d}/{cfg.epochs} | train loss {row['train_loss']:.4f} acc {row['train_acc']:6.2f}% | "
            f"test loss {test_loss:.4f} acc {test_acc:6.2f}% | lr {row['lr']:.4f} | {row['seconds']:5.1f}s")
        save_torch(ckpt_path, {
            "config": asdict(cfg), "model": model.state_dict(), "ema": ema.state_dict() if ema else None,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": rng_state(generator), "history": {"epochs": history["epochs"]},
        })
        write_json(run_dir / "history.json", history)

    save_torch(run_dir / "model.pt", {"model": cfg.model, "config": asdict(cfg),
                                      "state_dict": eval_model.state_dict()})
    return history


def load_trained(path: str | Path, device: str = "cpu") -> nn.Module:
    """The model saved in a run's model.pt, in eval mode."""
    saved = load_torch(path)
    model = build_model(saved["model"], saved["config"].get("dropout"))
    model.load_state_dict(saved["state_dict"])
    dev = pick_device(device)
    return model.to(dev, memory_format=memory_format(dev)).eval()
