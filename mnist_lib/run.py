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
from dataclasses import asdict, dataclass, field, fields, replace
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
from .speed import Member, StackedTrainer, make_step, trains_together
from .train import (
    evaluate,
    make_optimizer,
    make_scheduler,
    shards_per_step,
    steps_per_epoch,
    train_one_epoch,
)

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
    together: int | None = None  # runs trained in one step in this epoch, sharing its seconds

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


def make_model(
    cfg: TrainConfig, device: torch.device, layout: torch.memory_format | None = None
) -> nn.Module:
    """The config's model on ``device``, in ``layout`` (default: the one fastest there)."""
    layout = layout or memory_format(device)
    return build_model(cfg.model, cfg.dropout).to(device, memory_format=layout)


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
    return fit_together([cfg], [run_dir], device, data_dir, [resume], force, progress, log, data)[0]


def fit_together(
    cfgs: list[TrainConfig],
    run_dirs: list[str | Path],
    device: str = "auto",
    data_dir: str | Path | None = None,
    resume: list[bool] | None = None,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    data: Mnist | None = None,
    together: bool | None = None,
) -> list[History]:
    """`fit` for several runs of one recipe that differ in their seed, each in its own folder.

    They are trained together (`mnist_lib.speed.StackedTrainer`) when ``together``, by default
    on a GPU; otherwise one after the other. A single run on a GPU is trained "together" too:
    that is the path whose whole step is one CUDA graph.
    """
    for cfg in cfgs:
        cfg.validate()
    first = asdict(cfgs[0])
    if any(changed_fields(first, replace(c, seed=cfgs[0].seed)) for c in cfgs[1:]):
        raise ValueError("runs trained together must differ in their seed only")
    dev = pick_device(device)
    cfg = cfgs[0]
    amp = autocast_dtype(dev, cfg.precision)
    folders = [RunFolder(Path(d)) for d in run_dirs]
    resumes = resume or [False] * len(cfgs)
    together = trains_together(dev) if together is None else together
    with contextlib.ExitStack() as held:
        for folder in folders:
            held.enter_context(claimed(folder, log))
        targets = [
            training_folder(f, c, r, force) for f, c, r in zip(folders, cfgs, resumes, strict=True)
        ]
        dd = DeviceData.from_mnist(
            data or load_mnist(data_dir, log=log), dev, cfg.limit_train, cfg.limit_test, cfg.val
        )
        with contextlib.ExitStack() as making:
            for target in targets:
                making.enter_context(made(target.path))
            starts = zip(cfgs, targets, folders, resumes, strict=True)
            if together:
                runs = [start_run(c, t, f, dd, amp, r, log) for c, t, f, r in starts]
                for group in run_groups(runs):
                    train_group(group, dd, amp, together, progress, log)
            else:  # each run seeded just before it trains, as if it were alone
                runs = []
                for c, t, f, r in starts:
                    runs.append(start_run(c, t, f, dd, amp, r, log))
                    train_group(runs[-1:], dd, amp, together, progress, log)
    return [run.history for run in runs]


@dataclass
class Run:
    """A run being trained: its config, folder, history, and the objects that train it."""

    cfg: TrainConfig
    folder: RunFolder  # where it trains: ``home``, or a replacement's staging folder in it
    history: History
    member: Member
    home: RunFolder

    @property
    def eval_model(self) -> nn.Module:
        return self.member.eval_model

    def state(self) -> dict:
        m = self.member
        return {"model": m.model, "ema": m.ema, "optimizer": m.optimizer, "scheduler": m.scheduler}

    def save_checkpoint(self) -> None:
        save_torch(self.folder.checkpoint, {
            "config": asdict(self.cfg), "rng": rng_state(self.member.generator),
            "history": {"epochs": [e.to_json() for e in self.history.epochs]},
            **{k: obj.state_dict() if obj is not None else None for k, obj in self.state().items()},
        })  # fmt: skip
        if not self.history.finished:
            write_json(self.folder.history, self.history.to_json())

    def finish(self) -> None:
        """The model, then the history that marks the run finished (also when resuming a run
        killed after its last checkpoint); a replacement then moves into its home folder."""
        save_torch(
            self.folder.model,
            {"model": self.cfg.model, "config": asdict(self.cfg),
             "state_dict": self.eval_model.state_dict()},
        )  # fmt: skip
        write_json(self.folder.history, self.history.to_json())
        if self.folder != self.home:
            self.home.replace_with(self.folder)


def new_member(
    cfg: TrainConfig,
    device: torch.device,
    n_train: int,
    layout: torch.memory_format | None = None,
) -> Member:
    """A fresh run's model (in ``layout``, see `make_model`), weight average, optimizer, schedule
    and data generator, seeded by ``cfg.seed``, for ``n_train`` training images."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)  # batch order and augmentation, on the CPU
    model = make_model(cfg, device, layout)
    ema = Ema(model, cfg.ema, cfg.ema_warmup) if cfg.ema else None
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch(n_train, cfg.batch_size))
    return Member(model, ema, optimizer, scheduler, generator)


def start_run(
    cfg: TrainConfig,
    folder: RunFolder,
    home: RunFolder,
    dd: DeviceData,
    amp: torch.dtype | None,
    resume: bool,
    log: Callable[[str], None],
) -> Run:
    """A run's objects, seeded by its config, from its checkpoint when ``resume``."""
    dev = dd.train_x.device
    member = new_member(cfg, dev, len(dd.train_y))
    history = History(
        cfg.model,
        count_params(member.model),
        cfg.seed,
        str(dev),
        asdict(cfg),
        precision=precision_name(amp),
        torch=torch.__version__,
        hardware=hardware(dev),
    )
    run = Run(cfg, folder, history, member, home)
    if resume and folder.checkpoint.exists():
        ckpt = load_checkpoint(folder.checkpoint, cfg)
        for name, obj in run.state().items():
            if obj is not None:
                obj.load_state_dict(ckpt[name])
        set_rng_state(member.generator, ckpt["rng"])
        history.epochs = [Epoch(**row) for row in ckpt["history"]["epochs"]]
        log(f"resuming {folder.path} after epoch {len(history.epochs)}")
    return run


def run_groups(runs: list[Run]) -> list[list[Run]]:
    """The runs that can train together: those at the same epoch (resumed runs may differ)."""
    done = sorted({len(run.history.epochs) for run in runs})
    return [[run for run in runs if len(run.history.epochs) == d] for d in done]


class LoopTrainer:
    """One run's epochs by the loop of notebook 03 (`train_one_epoch`, `evaluate`); the same
    methods as `StackedTrainer`, for a list of one."""

    def __init__(
        self, run: Run, dd: DeviceData, amp: torch.dtype | None, shards: int, progress: bool
    ) -> None:
        self.run, self.dd, self.amp, self.progress = run, dd, amp, progress
        self.step = make_step(run.member.model, shards, amp, run.cfg.label_smoothing)

    def train_epoch(self) -> list[dict]:
        m, cfg = self.run.member, self.run.cfg
        epoch = len(self.run.history.epochs) + 1
        label = f"epoch {epoch}/{cfg.epochs}" if self.progress else None
        return [
            train_one_epoch(
                m.model, self.dd, m.optimizer, m.scheduler, cfg, m.generator, self.step, m.ema,
                progress=label,
            )
        ]  # fmt: skip

    def evaluate(self) -> list[tuple[float, float]]:
        dd, cfg = self.dd, self.run.cfg
        return [evaluate(self.run.eval_model, dd.eval_x, dd.eval_y, cfg.eval_batch_size, self.amp)]

    def store(self) -> None:
        pass  # the run's own objects were trained


def train_group(
    runs: list[Run],
    dd: DeviceData,
    amp: torch.dtype | None,
    together: bool,
    progress: bool,
    log: Callable[[str], None],
) -> None:
    """The remaining epochs of ``runs`` (all at the same epoch), checkpointed after each."""
    cfg, dev = runs[0].cfg, dd.train_x.device
    shards = shards_per_step(cfg, len(dd.train_y))
    trainer = (
        StackedTrainer([r.member for r in runs], dd, cfg, amp, shards)
        if together
        else LoopTrainer(runs[0], dd, amp, shards, progress)
    )
    seeds = ", ".join(str(r.cfg.seed) for r in runs)
    log(
        f"training {cfg.model} ({runs[0].history.params:,} params) on {dev} "
        f"({runs[0].history.precision}), {len(dd.train_y):,} train / {len(dd.eval_y):,} "
        f"{dd.split} images, seed{'s' if len(runs) > 1 else ''} {seeds}"
        + (f" ({len(runs)} runs in one step)" if len(runs) > 1 else "")
    )
    for epoch in range(len(runs[0].history.epochs) + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else "no epoch finished"
        stats = trainer.train_epoch()
        for run, st in zip(runs, stats, strict=True):
            if st.pop("first_bad_step") >= 0 or not math.isfinite(st["train_loss"]):
                raise UserError(
                    f"the loss became NaN/inf in epoch {epoch}{seed_note(run, runs)}: the "
                    f"learning rate {cfg.lr} is too high; {kept} in {run.folder.path}"
                )
        scores = trainer.evaluate()
        for run, (loss, _) in zip(runs, scores, strict=True):
            if not math.isfinite(loss):
                raise UserError(
                    f"the {dd.split} loss became NaN/inf in epoch {epoch}{seed_note(run, runs)}: "
                    f"the learning rate {cfg.lr} is too high; {kept} in {run.folder.path}"
                )
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        trainer.store()
        for run, st, (loss, acc) in zip(runs, stats, scores, strict=True):
            row = Epoch(
                epoch,
                **st,
                **{f"{dd.split}_loss": loss, f"{dd.split}_acc": acc},
                lr=run.member.scheduler.get_last_lr()[0],
                seconds=seconds,
                together=len(runs) if len(runs) > 1 else None,
            )
            run.history.epochs.append(row)
            log(
                f"{seed_note(run, runs, 'seed {}: ')}epoch {epoch:2d}/{cfg.epochs} | train loss "
                f"{row.train_loss:.4f} acc {row.train_acc:6.2f}% | {dd.split} loss {loss:.4f} "
                f"acc {acc:6.2f}% | lr {row.lr:.4f} | {row.seconds:5.1f}s"
            )
            run.save_checkpoint()
    for run in runs:
        run.finish()


def seed_note(run: Run, runs: list[Run], form: str = ", seed {}") -> str:
    """``form`` with the run's seed when several runs train together, else nothing."""
    return form.format(run.cfg.seed) if len(runs) > 1 else ""


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
