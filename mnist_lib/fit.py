"""`fit`: the loop of `train.py` plus what a run needs around it: a folder that one process holds
(`record.claimed`), a checkpoint after every epoch so that an interrupted run resumes, and its
history and weights, written whole."""

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .config import TrainConfig, UserError, changed_fields, saved_config
from .data import DeviceData, Mnist, load_mnist
from .device import autocast_dtype, hardware, memory_format, pick_device, precision_name
from .files import load_torch, made, save_torch, write_json
from .model import MODELS, build_model, count_params
from .record import Epoch, History, RunFolder, claimed, training_folder
from .train import (
    Ema,
    evaluate,
    forward_backward,
    make_optimizer,
    make_scheduler,
    steps_per_epoch,
    train_one_epoch,
)


@dataclass
class Run:
    """A run being trained: its config, history and the objects that train it; ``folder`` is
    where it trains (``home``, or a replacement's staging folder in it), None outside `fit`."""

    cfg: TrainConfig
    history: History
    model: nn.Module
    ema: Ema | None
    optimizer: torch.optim.SGD
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # batch order and augmentation draws, on the CPU for every device
    folder: RunFolder | None = None
    home: RunFolder | None = None

    @classmethod
    def new(
        cls,
        cfg: TrainConfig,
        device: torch.device,
        amp: torch.dtype | None,
        layout: torch.memory_format | None = None,
    ) -> "Run":
        """A fresh run of ``cfg`` on ``device``, seeded by ``cfg.seed``; the model in ``layout``
        (default: the one fastest on that device)."""
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        model = build_model(cfg.model, cfg.dropout).to(
            device, memory_format=layout or memory_format(device)
        )
        ema = Ema(model, cfg.ema, cfg.ema_warmup) if cfg.ema else None
        optimizer = make_optimizer(model, cfg)
        scheduler = make_scheduler(
            optimizer, cfg, steps_per_epoch(cfg.train_images, cfg.batch_size)
        )
        history = History(
            cfg.model, count_params(model), cfg.seed, str(device), asdict(cfg),
            precision=precision_name(amp), torch=torch.__version__, hardware=hardware(device),
        )  # fmt: skip
        return cls(cfg, history, model, ema, optimizer, scheduler, generator)

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are scored and saved: the weight average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def state(self) -> dict:
        return {"model": self.model, "ema": self.ema, "optimizer": self.optimizer,
                "scheduler": self.scheduler}  # fmt: skip

    def place(
        self, folder: RunFolder, home: RunFolder, resume: bool, log: Callable[[str], None]
    ) -> "Run":
        """Train in ``folder``; with ``resume``, from the checkpoint there, if there is one."""
        self.folder, self.home = folder, home
        if resume and folder.checkpoint.exists():
            self.resume(log)
        return self

    def resume(self, log: Callable[[str], None]) -> None:
        """Load the objects, the random streams and the epochs so far from the checkpoint."""
        path, fix = self.folder.checkpoint, "delete it, or start over with --force"
        ckpt = load_torch(path, fix=fix)
        try:
            other = changed_fields(ckpt["config"], self.cfg)
            if other:
                raise UserError(
                    f"{path} was made with other settings ({', '.join(other)}): resume with "
                    "the same ones, or --force"
                )
            for name, obj in self.state().items():
                if obj is not None:
                    obj.load_state_dict(ckpt[name])
            torch.set_rng_state(ckpt["rng"]["torch"])
            self.generator.set_state(ckpt["rng"]["data"])
            if "cuda" in ckpt["rng"] and torch.cuda.is_available():  # dropout's masks on a GPU
                torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
            self.history.epochs = [Epoch(**row) for row in ckpt["history"]["epochs"]]
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            what = str(exc).splitlines()[0][:120] if str(exc) else ""
            raise UserError(
                f"{path} is not a checkpoint of this run ({type(exc).__name__} {what}): {fix}"
            ) from None
        log(f"resuming {self.folder.path} after epoch {len(self.history.epochs)}")

    def end_epoch(
        self,
        stats: dict,
        scores: tuple[float, float],
        seconds: float,
        split: str,
        log: Callable[[str], None],
        together: int | None = None,
    ) -> None:
        """Check an epoch's numbers, add them to the history, print them and save a checkpoint;
        ``together``: how many runs shared the epoch's seconds."""
        epoch, (loss, acc) = len(self.history.epochs) + 1, scores
        if not (math.isfinite(stats["train_loss"]) and math.isfinite(loss)):
            kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else "none is kept"
            raise UserError(
                f"the loss became NaN/inf in epoch {epoch} (seed {self.cfg.seed}): the learning "
                f"rate {self.cfg.lr} is too high; {kept} in {self.folder.path}"
            )
        row = Epoch(
            epoch, **stats, **{f"{split}_loss": loss, f"{split}_acc": acc},
            lr=self.scheduler.get_last_lr()[0], seconds=seconds, together=together,
        )  # fmt: skip
        self.history.epochs.append(row)
        log(
            f"{f'seed {self.cfg.seed}: ' if together else ''}epoch {epoch:2d}/{self.cfg.epochs} "
            f"| train loss {row.train_loss:.4f} acc {row.train_acc:6.2f}% | {split} loss "
            f"{loss:.4f} acc {acc:6.2f}% | lr {row.lr:.4f} | {seconds:5.1f}s"
        )
        rng = {"torch": torch.get_rng_state(), "data": self.generator.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        save_torch(self.folder.checkpoint, {
            "config": asdict(self.cfg), "rng": rng, "history": {"epochs": [
                e.to_json() for e in self.history.epochs]},
            **{k: obj.state_dict() if obj is not None else None for k, obj in self.state().items()},
        })  # fmt: skip
        if not self.history.finished:
            write_json(self.folder.history, self.history.to_json())

    def stopped(self) -> str:
        """What stopping now leaves, and how to go on."""
        replacing, path = self.folder.path != self.home.path, self.folder.checkpoint
        if not path.exists():
            kept = f"; the finished run in {self.home.path} is as it was" * replacing
            return f"no epoch had finished, so nothing was kept{kept}"
        saved = len(load_torch(path)["history"]["epochs"])
        return f"epochs 1-{saved} are in {path}: run the same command with " + (
            "--force --resume to continue the replacement" if replacing else "--resume"
        )

    def finish(self) -> None:
        """The model, then the history that marks the run finished (also when resuming a run
        killed after its last checkpoint); a replacement then moves into its home folder."""
        self.folder.save(self.history, self.eval_model.state_dict())
        if self.folder.path != self.home.path:
            self.home.replace_with(self.folder)


def fit(
    cfg: TrainConfig,
    run_dir: str | Path,
    device: str = "auto",
    *,
    data_dir: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    log: Callable[[str], None] = print,
    data: Mnist | None = None,
    step: Callable[..., tuple[torch.Tensor, torch.Tensor]] = forward_backward,
) -> History:
    """Train ``cfg`` into ``run_dir`` and return its history (also in history.json).

    Everything that can be checked is checked before the first epoch: the config, the device,
    and the folder (free, writable, not holding a run unless ``resume``/``force`` say what to do
    with it). ``data``: MNIST already loaded; ``step``: how each batch's gradient is computed.
    """
    cfg.validate()
    dev = pick_device(device)
    amp = autocast_dtype(dev, cfg.precision)
    home = RunFolder(run_dir)
    with claimed(home, log):
        folder = training_folder(home, cfg, resume, force)
        dd = DeviceData.from_mnist(
            data or load_mnist(data_dir, log=log), dev, cfg.limit_train, cfg.limit_test, cfg.val
        )
        with made(folder.path):
            run = Run.new(cfg, dev, amp).place(folder, home, resume, log)
            try:
                log(
                    f"training {cfg.model} ({run.history.params:,} params) on {dev} "
                    f"({run.history.precision}), {len(dd.train_y):,} train / {len(dd.eval_y):,} "
                    f"{dd.split} images, seed {cfg.seed}"
                )
                for _ in range(len(run.history.epochs), cfg.epochs):
                    start = time.perf_counter()
                    stats = train_one_epoch(run.model, dd, run.optimizer, run.scheduler, cfg,
                                            run.generator, run.ema, amp, step)  # fmt: skip
                    scores = evaluate(run.eval_model, dd.eval_x, dd.eval_y, cfg.eval_batch_size,
                                      amp)  # fmt: skip
                    run.end_epoch(stats, scores, time.perf_counter() - start, dd.split, log)
            except KeyboardInterrupt:
                raise KeyboardInterrupt(run.stopped()) from None
            run.finish()
    return run.history


def load_trained(path: str | Path, device: str = "cpu") -> nn.Module:
    """The model saved in a run's model.pt (``path``: the file, or its run folder), in eval mode."""
    path = RunFolder(path).model if Path(path).is_dir() else Path(path)
    saved = load_torch(path, fix="retrain it, e.g. with --force")
    if not (
        isinstance(saved, dict)
        and isinstance(saved.get("model"), str)
        and saved["model"] in MODELS
        and isinstance(saved.get("config"), dict)
        and "state_dict" in saved
    ):
        raise UserError(
            f"{path} is not a trained model of this library (a run's {RunFolder.MODEL}): give "
            "that file or its run folder"
        )
    try:
        model = build_model(saved["model"], saved_config(saved["config"])["dropout"])
        model.load_state_dict(saved["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise UserError(
            f"{path} does not hold the weights of a {saved['model']!r} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:100] if str(exc) else ''}): retrain it, e.g. with --force"
        ) from None
    dev = pick_device(device)
    return model.to(dev, memory_format=memory_format(dev)).eval()
