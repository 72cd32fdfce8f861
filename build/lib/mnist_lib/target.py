"""The project's target, in one place, and the one function that checks a run against it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import History

TARGET_ACC = 99.40  # percent test accuracy, held in every one of the last LAST_N epochs
LAST_N = 5
MAX_EPOCHS = 20
MAX_PARAMS = 15_000  # strictly fewer than this


@dataclass(frozen=True)
class TargetResult:
    passed: bool
    params: int
    epochs: int
    last_accs: list[float]
    reasons: list[str]  # empty when passed
    split: str = "test"  # what the accuracies were measured on: "test", or "val"

    def line(self) -> str:
        accs = ", ".join(f"{a:.2f}" for a in self.last_accs)
        verdict = "PASS" if self.passed else "FAIL (" + "; ".join(self.reasons) + ")"
        return (
            f"params {self.params:,} | epochs {self.epochs} | last {LAST_N} {self.split} acc "
            f"[{accs}] % | target {verdict}"
        )


def check_target(history: History, max_epochs: int = MAX_EPOCHS) -> TargetResult:
    """Check a run's history against the target; ``max_epochs`` may set a stricter budget.

    A run with a validation split is checked on its validation accuracies (and says so): the
    target itself is about the test set.
    """
    accs = history.accs()
    last = accs[-LAST_N:]
    reasons = []
    if len(accs) < LAST_N:
        reasons.append(f"only {len(accs)} epoch(s), need at least {LAST_N}")
    if len(accs) > max_epochs:
        reasons.append(f"{len(accs)} epochs > {max_epochs}")
    if history.params >= MAX_PARAMS:
        reasons.append(f"{history.params:,} params >= {MAX_PARAMS:,}")
    below = [a for a in last if a < TARGET_ACC]
    if below:
        reasons.append(f"{len(below)} of the last {len(last)} epochs below {TARGET_ACC:.2f} %")
    return TargetResult(not reasons, history.params, len(accs), last, reasons, history.split)
