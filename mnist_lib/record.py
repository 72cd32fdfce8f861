"""A run's record: its epochs (`History`), the files of its folder (`RunFolder`) and the rules
that keep them, and the target a run is checked against (`target_misses`).

Nothing finished is lost: a folder in use by a live process is refused (`claimed`), and a run
that replaces another trains beside it, in ``.next/``, and moves in only when it has finished
(`training_folder`).
"""

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .config import TrainConfig, UserError, changed_fields
from .files import locked, made, read_json, save_torch, write_json

TARGET_ACC = 99.40  # percent test accuracy, held in every one of the last LAST_N epochs
LAST_N = 5
MAX_EPOCHS = 20
MAX_PARAMS = 15_000  # strictly fewer than this


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
        head = [f.name for f in fields(self) if f.name != "epochs"]
        return {**{k: getattr(self, k) for k in head}, "epochs": [e.to_json() for e in self.epochs]}

    @classmethod
    def from_json(cls, data: dict) -> "History":
        """A history as `to_json` wrote it; TypeError or KeyError for anything else."""
        known = {f.name for f in fields(cls)}
        epochs = [Epoch(**row) for row in data["epochs"]]
        head = {k: v for k, v in data.items() if k in known and k != "epochs"}
        history = cls(**head, epochs=epochs)
        if not isinstance(history.config.get("epochs"), int) or not all(
            isinstance(a, int | float) for a in history.accs()
        ):
            raise TypeError("its config has no epochs, or an epoch has no score")
        return history


class RunFolder:
    """The files of one run, by name: the only place that spells them.

    ``model.pt`` is written before the last epoch's history, so a history with every epoch
    means a finished run; a --force run trains in ``.next/`` and replaces the old run only when
    it has finished.
    """

    HISTORY = "history.json"  # the per-epoch numbers, rewritten after every epoch
    CHECKPOINT = "checkpoint.pt"  # everything needed to resume
    MODEL = "model.pt"  # the evaluated weights (the weight average when there is one)
    STAGING, LOCK = ".next", ".lock"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.history, self.checkpoint = self.path / self.HISTORY, self.path / self.CHECKPOINT
        self.model, self.lock = self.path / self.MODEL, self.path / self.LOCK

    @property
    def staging(self) -> "RunFolder":
        return RunFolder(self.path / self.STAGING)

    def read_history(self) -> "History":
        data = read_json(self.history)
        try:
            return History.from_json(data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise UserError(
                f"{self.history} is not a run's history ({type(exc).__name__}: {exc}): "
                "delete the folder or retrain with --force"
            ) from None

    def save(self, history: History, weights: dict) -> None:
        """The evaluated ``weights`` (a state dict), then the history that marks a finished run."""
        save_torch(self.model, {"model": history.model, "config": history.config,
                                "state_dict": weights})  # fmt: skip
        write_json(self.history, history.to_json())

    def has_run(self) -> bool:
        """Whether any of a run's files are here."""
        return any(p.exists() for p in (self.history, self.checkpoint, self.model))

    def is_finished(self) -> bool:
        return self.model.is_file() and self.history.is_file() and self.read_history().finished

    def replace_with(self, new: "RunFolder") -> None:
        """Move a finished run from ``new`` into this folder, its history last, and remove
        ``new``; a kill half-way is completed by the next run in this folder."""
        for name in (self.MODEL, self.CHECKPOINT, self.HISTORY):
            if (new.path / name).exists():  # else moved already, by a process killed half-way
                os.replace(new.path / name, self.path / name)
        shutil.rmtree(new.path)


@contextlib.contextmanager
def claimed(folder: RunFolder, log: Callable[[str], None]) -> Iterator[None]:
    """Create ``folder`` if needed and hold its lock; tidy up what a killed process left (temporary
    files, a replacement that had finished but was not yet moved in)."""
    try:
        with made(folder.path), locked(folder.lock, folder.path):
            for stale in [*folder.path.glob(".*.tmp"), *folder.staging.path.glob(".*.tmp")]:
                stale.unlink()  # only the lock holder writes here
            if folder.staging.history.is_file() and folder.staging.read_history().finished:
                log(f"{folder.path}: moving in the finished run that a stopped --force left")
                folder.replace_with(folder.staging)
            yield
    except OSError as exc:
        path, mine = Path(exc.filename or "").resolve(), folder.path.resolve()
        if exc.filename and path not in [mine, *mine.parents] and mine not in path.parents:
            raise  # another file's error (the data's, say) is not the run folder's
        raise UserError(
            f"cannot write to the run directory {folder.path} ({exc.strerror or exc}): "
            "choose another --out"
        ) from None


def training_folder(folder: RunFolder, cfg: TrainConfig, resume: bool, force: bool) -> RunFolder:
    """Where this run trains: ``folder`` itself, or, when it replaces a run, its staging folder
    (where ``resume`` continues an interrupted replacement)."""
    target = folder.staging if force and folder.has_run() else folder
    if force and resume and not target.checkpoint.exists():
        raise UserError(
            f"there is no stopped replacement in {target.path} to resume: pass --resume alone to "
            f"continue an interrupted run, or --force alone to start over"
        )
    if force:
        return target
    waiting = "; a replacement stopped in .next/ continues with --force --resume" * (
        folder.staging.checkpoint.exists()
    )
    if folder.is_finished():
        other = changed_fields(folder.read_history().config, cfg)
        detail = f" (made with other settings: {', '.join(other)})" if other else ""
        raise UserError(
            f"{folder.path} already holds a finished run{detail}: pass --force to replace "
            "it (it is kept until the new run finishes), or choose another --out" + waiting
        )
    if folder.checkpoint.exists() and not resume:
        raise UserError(
            f"{folder.path} holds an interrupted run: pass --resume to continue it, "
            "or --force to start over" + waiting
        )
    return folder


def target_misses(history: History, max_epochs: int = MAX_EPOCHS) -> list[str]:
    """Why a run's history misses the target; empty when it holds. ``max_epochs`` may set a
    stricter budget. A run with a validation split is judged on its validation accuracies."""
    accs = history.accs()
    misses = []
    if len(accs) < LAST_N:
        misses.append(f"only {len(accs)} epoch(s), need at least {LAST_N}")
    if len(accs) > max_epochs:
        misses.append(f"{len(accs)} epochs > {max_epochs}")
    if history.params >= MAX_PARAMS:
        misses.append(f"{history.params:,} params >= {MAX_PARAMS:,}")
    below = [a for a in accs[-LAST_N:] if a < TARGET_ACC]
    if below:
        misses.append(
            f"{len(below)} of the last {len(accs[-LAST_N:])} epochs below {TARGET_ACC:.2f} %"
        )
    return misses


def target_line(history: History, max_epochs: int = MAX_EPOCHS) -> str:
    """The run against the target, in one line."""
    misses = target_misses(history, max_epochs)
    accs = ", ".join(f"{a:.2f}" for a in history.accs()[-LAST_N:])
    return (
        f"params {history.params:,} | epochs {len(history.epochs)} | last {LAST_N} {history.split} "
        f"acc [{accs}] % | target {'FAIL (' + '; '.join(misses) + ')' if misses else 'PASS'}"
    )
