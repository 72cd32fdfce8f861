"""A recipe over seeds: one run is one draw (the seed sets the initial weights, the batch order and
the augmentation), so a claim about a recipe is made over several runs that differ in their seed."""

import math
import statistics
from pathlib import Path

from .record import LAST_N, MAX_EPOCHS, TARGET_ACC, History, RunFolder, target_misses


def read_histories(folder: str | Path) -> list[History]:
    """The histories of a seed sweep's runs (its ``seed-N`` folders), by seed."""
    runs = [RunFolder(p).read_history() for p in Path(folder).glob("seed-*") if p.is_dir()]
    return sorted(runs, key=lambda h: h.seed)


def over_seeds(histories: list[History], max_epochs: int = MAX_EPOCHS) -> str:
    """One line on a recipe over seeds: how many hold the target, and the lowest accuracy of
    each seed's last epochs as mean ± standard deviation, with the worst seed."""
    lows = [lowest(h) for h in histories]
    passed = sum(not target_misses(h, max_epochs) for h in histories)
    spread = statistics.stdev(lows) if len(lows) > 1 else 0.0
    worst = min(zip(lows, (h.seed for h in histories), strict=True))
    return (
        f"{histories[0].model}: {passed}/{len(histories)} seeds hold {TARGET_ACC:.2f} % in each "
        f"of the last {LAST_N} {histories[0].split} epochs; their lowest "
        f"{statistics.fmean(lows):.2f} ± {spread:.2f} % (worst {worst[0]:.2f} %, seed {worst[1]})"
    )


def lowest(history: History) -> float:
    """The lowest scored accuracy of a run's last epochs: the number the target is about."""
    return min(history.accs()[-LAST_N:])


def chance_difference(groups: list[list[History]]) -> tuple[float, int, float]:
    """How large a difference between two groups' mean `lowest` the seeds can tell from luck.

    Returns the seed-to-seed standard deviation of `lowest`, pooled over the groups that trained
    (one stuck at chance has no spread to pool), the number of seeds per group, and
    2 std sqrt(2 / seeds): about the largest difference between two groups' means that chance
    alone gives, 19 times in 20.
    """
    trained = [g for g in groups if len(g) > 1 and statistics.fmean(map(lowest, g)) > 50]
    if not trained:
        return math.nan, 0, math.nan
    seeds = min(len(g) for g in trained)
    std = math.sqrt(statistics.fmean(statistics.variance(map(lowest, g)) for g in trained))
    return std, seeds, 2 * std * math.sqrt(2 / seeds)


def changes(groups: dict[str, list[History]], base: str) -> dict[str, tuple[float, bool]]:
    """Per group: how far the mean `lowest` moved against group ``base``, and whether that is
    beyond chance (`chance_difference` over all the groups given)."""
    chance = chance_difference(list(groups.values()))[2]
    base_mean = statistics.fmean(map(lowest, groups[base]))
    moved = {name: statistics.fmean(map(lowest, runs)) - base_mean for name, runs in groups.items()}
    return {name: (change, abs(change) > chance) for name, change in moved.items()}


def compare_table(groups: dict[str, list[History]], base: str) -> str:
    """One row per group of seeds: parameters, the final and the lowest accuracy (mean ± std),
    the change of the lowest's mean against group ``base``, whether it is beyond chance (over
    all the groups given), the worst seed and how many seeds held the target."""
    moved = changes(groups, base)
    lines = [
        f"{'variant':<16} | {'params':>6} | {'final acc (%)':>13} | {'last-5 min (%)':>14} | "
        f"{'vs ' + base:>9} | {'> chance':>8} | {'worst':>6} | passed"
    ]
    for name, runs in groups.items():
        finals, lows = [h.accs()[-1] for h in runs], [lowest(h) for h in runs]
        change, beyond_chance = moved[name]
        beyond = "" if name == base else "yes" if beyond_chance else "no"
        passed = sum(not target_misses(h) for h in runs)
        lines.append(
            f"{name:<16} | {runs[0].params:>6,} | {statistics.fmean(finals):6.2f} ± "
            f"{statistics.stdev(finals):.2f} | {statistics.fmean(lows):7.2f} ± "
            f"{statistics.stdev(lows):.2f} | {change:+9.2f} | {beyond:>8} | {min(lows):6.2f} | "
            f"{passed}/{len(runs)}"
        )
    return "\n".join(lines)
