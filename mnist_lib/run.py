"""A run and its folder: the typed history, a checkpoint after every epoch, `fit`, `load_trained`.

A run folder holds
- ``checkpoint.pt``  everything needed to resume (model, EMA, optimizer, schedule, RNG, history);
- ``history.json``   the per-epoch numbers (`History`), rewritten after every epoch;
- ``model.pt``       the evaluated weights (the EMA copy when EMA is on), written before the last
                     epoch's history, so a history with every epoch means a finished run.

Nothing finished is lost: a folder in use by a live process is refused, and ``force`` trains the
replacement beside the old run (in ``.next/``) and swaps it in only when it has finished.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from .config import TrainConfig, changed_fields, saved_config
from .data import DeviceData, Mnist, load_mnist
from .device import autocast_dtype, hardware, memory_format, pick_device, precision_name
from .ema import Ema
from .errors import UserError
from .files import load_torch, read_json, save_torch, write_json
from .model import build_model, count_params
from .speed import make_step
from .train import evaluate, make_optimizer, make_scheduler, steps_per_epoch, train_one_epoch

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; run folders are then not guarded
    fcntl = None


@dataclass
class Epoch:
    """One row of a history: accuracies in %, losses in nats per image."""

    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float | None = None  # scored on the test set (a run without a validation split)...
    test_acc: float | None = None
    val_loss: float | None = None  # ...or on the held-out validation images
    val_acc: float | None = None
    lr: float = 0.0  # the learning rate at the end of the epoch
    seconds: float = 0.0  # wall time of the epoch's training and scoring

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class History:
    """What a run did: the model, where it ran, its config, and one `Epoch` per epoch."""

    model: str
    params: int
    seed: int
    device: str
    config: dict
    epochs: list[Epoch] = field(default_factory=list)
    precision: str = ""
    torch: str = ""
    hardware: str = ""

    @property
    def split(self) -> str:
        """What the epochs were scored on: "val" (a held-out validation set) or "test"."""
        return "val" if self.config.get("val") else "test"

    def accs(self) -> list[float]:
        """The scored accuracy of every epoch (on the test set, or the validation set)."""
        return [getattr(e, f"{self.split}_acc") for e in self.epochs]

    @property
    def finished(self) -> bool:
        return len(self.epochs) >= self.config["epochs"]

    def to_json(self) -> dict:
        head = {
            k: getattr(self, k)
            for k in (
                "model",
                "params",
                "seed",
                "device",
                "precision",
                "torch",
                "hardware",
                "config",
            )
        }
        return {**head, "epochs": [e.to_json() for e in self.epochs]}

    @classmethod
    def from_json(cls, data: dict) -> History:
        known = {f.name for f in fields(cls)}
        epochs = [Epoch(**row) for row in data["epochs"]]
        return cls(**{k: v for k, v in data.items() if k in known and k != "epochs"}, epochs=epochs)


@dataclass(frozen=True)
class RunFolder:
    """The files of one run, by name: the only place that spells them."""

    path: Path

    HISTORY = "history.json"
    CHECKPOINT = "checkpoint.pt"
    MODEL = "model.pt"
    STAGING = ".next"  # a --force run trains here and replaces the old one only when finished
    LOCK = ".lock"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # a str is fine too

    @property
    def history(self) -> Path:
        return self.path / self.HISTORY

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def model(self) -> Path:
        return self.path / self.MODEL

    @property
    def staging(self) -> RunFolder:
        return RunFolder(self.path / self.STAGING)

    def read_history(self) -> History:
        try:
            return History.from_json(read_json(self.history))
        except (KeyError, TypeError) as exc:
            raise UserError(
                f"{self.history} is not a run's history ({type(exc).__name__}: {exc}): "
                "delete the folder or retrain with --force"
            ) from None

    def has_run(self) -> bool:
        """Whether any of a run's files are here."""
        return any(p.exists() for p in (self.history, self.checkpoint, self.model))

    def is_finished(self) -> bool:
        return self.model.is_file() and self.history.is_file() and self.read_history().finished

    def replace_with(self, new: RunFolder) -> None:
        """Move a finished run from ``new`` into this folder, its history last (see the module
        docstring), and remove ``new``; a kill half-way is completed by the next `claim`."""
        for name in (self.MODEL, self.CHECKPOINT, self.HISTORY):
            if (new.path / name).exists():  # else moved already, by a process killed half-way
                os.replace(new.path / name, self.path / name)
        shutil.rmtree(new.path)


def process_name(pid: str) -> str:
    """The command line of process ``pid`` where the system tells it (Linux), else its number."""
    with contextlib.suppress(OSError, ValueError):
        cmdline = (
            Path(f"/proc/{int(pid)}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        )
        if cmdline:
            return f"process {pid} ({cmdline})"
    return f"process {pid}"


@contextlib.contextmanager
def locked(folder: RunFolder) -> Iterator[None]:
    """Hold ``folder``'s lock file for the block; refuse (one line) when a live process holds it.

    The lock is the operating system's (flock): a killed process releases it, so no stale lock
    can block a folder."""
    if fcntl is None:
        yield
        return
    path = folder.path / folder.LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(
                f"{folder.path} is in use by {process_name(owner)}: wait for it to end, "
                "or choose another --out"
            ) from None
        # The holder before us may have removed the file after we opened it: lock the new one.
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


@contextlib.contextmanager
def claimed(folder: RunFolder, log: Callable[[str], None]) -> Iterator[None]:
    """Create ``folder`` if needed and hold its lock; tidy up what a killed process left (temporary
    files, a replacement that had finished but was not yet moved in)."""
    try:
        with made(folder.path), locked(folder):
            for stale in [*folder.path.glob(".*.tmp"), *folder.staging.path.glob(".*.tmp")]:
                stale.unlink()  # only the lock holder writes here
            staged = folder.staging
            if staged.history.is_file() and staged.read_history().finished:
                log(
                    f"{folder.path}: moving in the finished run that a stopped --force left in "
                    f"{staged.path}"
                )
                folder.replace_with(staged)
            yield
    except OSError as exc:
        if exc.filename and not inside(Path(exc.filename), folder.path):
            raise  # another file's error (the data's, say) is not the run folder's
        raise UserError(
            f"cannot write to the run directory {folder.path} ({exc.strerror or exc}): "
            "choose another --out"
        ) from None


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies within it."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


@contextlib.contextmanager
def made(path: Path) -> Iterator[None]:
    """Create the folder ``path`` for the block; if it was new, remove it again should the block
    leave it empty (a run refused or stopped before its first file)."""
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield
    finally:
        if created and path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def training_folder(folder: RunFolder, cfg: TrainConfig, resume: bool, force: bool) -> RunFolder:
    """Where this run trains: ``folder`` itself, or, when it replaces a run, its staging folder
    (where ``resume`` continues an interrupted replacement)."""
    if force:
        return folder.staging if folder.has_run() else folder
    if folder.is_finished():
        saved = folder.read_history().config
        other = changed_fields(saved, cfg)
        detail = f" (made with other settings: {', '.join(other)})" if other else ""
        raise UserError(
            f"{folder.path} already holds a finished run{detail}: pass --force to replace "
            "it (it is kept until the new run finishes), or choose another --out"
        )
    if folder.checkpoint.exists() and not resume:
        raise UserError(
            f"{folder.path} holds an interrupted run: pass --resume to continue it, "
            "or --force to start over"
        )
    return folder


def load_checkpoint(path: Path, cfg: TrainConfig) -> dict:
    ckpt = load_torch(path, fix="delete it, or start over with --force")
    saved = ckpt.get("config", {})
    if saved.get("model") != cfg.model:
        raise UserError(
            f"{path} is a checkpoint of model {saved.get('model')!r}, not {cfg.model!r}: "
            "use the same --model, or another --out"
        )
    other = changed_fields(saved, cfg)
    if other:
        raise UserError(
            f"{path} was made with other settings ({', '.join(other)}): resume with "
            "the same ones, or --force"
        )
    return ckpt


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


def make_model(cfg: TrainConfig, device: torch.device) -> nn.Module:
    """The config's model on ``device``, in the memory layout that is fastest there."""
    return build_model(cfg.model, cfg.dropout).to(device, memory_format=memory_format(device))


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
) -> History:
    """Train ``cfg`` into ``run_dir`` and return its history (also in history.json).

    Everything that can be checked is checked before the first epoch: the config, the device,
    the folder (free, writable, not holding a run unless ``resume``/``force`` say what to do with
    it) and the data limits.
    """
    cfg.validate()
    dev = pick_device(device)
    amp = autocast_dtype(dev, cfg.precision)
    folder = RunFolder(Path(run_dir))
    with claimed(folder, log):
        target = training_folder(folder, cfg, resume, force)
        dd = DeviceData.from_mnist(
            data or load_mnist(data_dir, log=log), dev, cfg.limit_train, cfg.limit_test, cfg.val
        )
        with made(target.path):
            history = train_run(cfg, target, dd, amp, resume, progress, log)
        if target != folder:
            folder.replace_with(target)
    return history


def train_run(
    cfg: TrainConfig,
    folder: RunFolder,
    dd: DeviceData,
    amp: torch.dtype | None,
    resume: bool,
    progress: bool,
    log: Callable[[str], None],
) -> History:
    """The epochs of a run in ``folder``, from its checkpoint when ``resume``."""
    dev = dd.train_x.device
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)  # batch order and augmentation, on the CPU
    model = make_model(cfg, dev)
    ema = Ema(model, cfg.ema) if cfg.ema else None
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch(len(dd.train_y), cfg.batch_size))
    history = History(
        cfg.model,
        count_params(model),
        cfg.seed,
        str(dev),
        asdict(cfg),
        precision=precision_name(amp),
        torch=torch.__version__,
        hardware=hardware(dev),
    )
    state = {"model": model, "ema": ema, "optimizer": optimizer, "scheduler": scheduler}
    if resume and folder.checkpoint.exists():
        ckpt = load_checkpoint(folder.checkpoint, cfg)
        for name, obj in state.items():
            if obj is not None:
                obj.load_state_dict(ckpt[name])
        set_rng_state(generator, ckpt["rng"])
        history.epochs = [Epoch(**row) for row in ckpt["history"]["epochs"]]
        log(f"resuming {folder.path} after epoch {len(history.epochs)}")
    eval_model = ema.module if ema is not None else model
    shards = min(cfg.shards, cfg.batch_size, len(dd.train_y))
    step = make_step(model, shards, amp, cfg.label_smoothing)

    log(
        f"training {cfg.model} ({history.params:,} params) on {dev} ({history.precision}), "
        f"{len(dd.train_y):,} train / {len(dd.eval_y):,} {dd.split} images, seed {cfg.seed}"
    )
    for epoch in range(len(history.epochs) + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        stats = train_one_epoch(
            model,
            dd,
            optimizer,
            scheduler,
            cfg,
            generator,
            step,
            ema,
            progress=f"epoch {epoch}/{cfg.epochs}" if progress else None,
        )
        kept = (
            f"the checkpoint of epoch {epoch - 1} in {folder.path} is kept"
            if epoch > 1
            else "no epoch finished"
        )
        if stats.pop("first_bad_step") >= 0 or not math.isfinite(stats["train_loss"]):
            raise UserError(
                f"the loss became NaN/inf in epoch {epoch}: the learning rate {cfg.lr} "
                f"is too high; {kept}"
            )
        loss, acc = evaluate(eval_model, dd.eval_x, dd.eval_y, cfg.eval_batch_size, amp)
        if not math.isfinite(loss):
            raise UserError(
                f"the {dd.split} loss became NaN/inf in epoch {epoch}: the learning rate "
                f"{cfg.lr} is too high; {kept}"
            )
        if dev.type == "cuda":
            torch.cuda.synchronize()
        scores = {f"{dd.split}_loss": loss, f"{dd.split}_acc": acc}
        row = Epoch(
            epoch,
            **stats,
            **scores,
            lr=scheduler.get_last_lr()[0],
            seconds=time.perf_counter() - t0,
        )
        history.epochs.append(row)
        log(
            f"epoch {epoch:2d}/{cfg.epochs} | train loss {row.train_loss:.4f} "
            f"acc {row.train_acc:6.2f}% | {dd.split} loss {loss:.4f} acc {acc:6.2f}% "
            f"| lr {row.lr:.4f} | {row.seconds:5.1f}s"
        )
        save_torch(folder.checkpoint, {
            "config": asdict(cfg), "rng": rng_state(generator),
            "history": {"epochs": [e.to_json() for e in history.epochs]},
            **{name: obj.state_dict() if obj is not None else None for name, obj in state.items()},
        })  # fmt: skip
        if not history.finished:
            write_json(folder.history, history.to_json())
    # After the last epoch, and also when resuming a run killed after its last checkpoint: the
    # model, then the history that marks the run finished.
    save_torch(
        folder.model,
        {"model": cfg.model, "config": asdict(cfg), "state_dict": eval_model.state_dict()},
    )
    write_json(folder.history, history.to_json())
    return history


def load_trained(path: str | Path, device: str = "cpu") -> nn.Module:
    """The model saved in a run's model.pt (``path``: the file, or its run folder), in eval mode."""
    path = RunFolder(path).model if Path(path).is_dir() else Path(path)
    saved = load_torch(path, fix="retrain it, e.g. with --force")
    if not (
        isinstance(saved, dict)
        and isinstance(saved.get("model"), str)
        and isinstance(saved.get("config"), dict)
        and "state_dict" in saved
    ):
        raise UserError(
            f"{path} is not a trained model (a run's {RunFolder.MODEL}): give that file or its "
            "run folder"
        )
    config = saved_config(saved["config"])
    model = build_model(saved["model"], config["dropout"])
    model.load_state_dict(saved["state_dict"])
    dev = pick_device(device)
    return model.to(dev, memory_format=memory_format(dev)).eval()
