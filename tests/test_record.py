"""A run's record: the target check on hand-made histories (>= 99.40 % in each of the last 5
epochs, <= 20 epochs, < 15k params), and the line over seeds."""

import math
import re

import pytest
from helpers import made_history

from mnist_lib.record import target_line, target_misses
from mnist_lib.seeds import chance_difference, compare_table, over_seeds

GOOD_LAST_5 = [99.40, 99.45, 99.52, 99.41, 99.60]


def test_all_last_five_at_target_passes():
    history = made_history([97.0] * 10 + GOOD_LAST_5)  # early epochs do not count
    assert target_misses(history) == []
    line = target_line(history)
    assert (
        line.endswith("target PASS")
        and "last 5 test acc [99.40, 99.45, 99.52, 99.41, 99.60]" in line
    )
    assert line.startswith("params 13,154 | epochs 15 |")


def test_one_epoch_at_99_39_fails():
    history = made_history([97.0] * 10 + [99.40, 99.45, 99.39, 99.41, 99.60])
    misses = target_misses(history)
    assert len(misses) == 1 and re.search(r"1 of the last 5 .*below 99\.40", misses[0])
    assert "FAIL" in target_line(history) and misses[0] in target_line(history)


@pytest.mark.parametrize(
    ("accs", "params", "reason"),
    [
        ([99.5] * 16 + GOOD_LAST_5, 13_154, r"21 epochs > 20"),
        ([99.5] * 5, 15_000, r"15,000 params >= 15,000"),
        ([99.9] * 4, 13_154, r"only 4 epoch.*at least 5"),
    ],
    ids=["21-epochs", "15000-params", "4-epochs"],
)
def test_each_limit_fails_alone(accs, params, reason):
    misses = target_misses(made_history(accs, params))
    assert len(misses) == 1 and re.search(reason, misses[0])


def test_limits_are_inclusive_where_the_target_says_so():
    assert not target_misses(made_history([99.5] * 15 + GOOD_LAST_5, params=14_999))
    assert target_misses(made_history([99.5] * 11 + GOOD_LAST_5), max_epochs=15)


def test_a_validation_run_is_checked_on_its_validation_accuracies_and_says_so():
    history = made_history([99.5] * 10 + GOOD_LAST_5, val=10_000)
    assert not target_misses(history) and "last 5 val acc" in target_line(history)


def test_the_line_over_seeds_counts_the_passes_and_the_spread():
    lows = [99.40, 99.50, 99.36]  # the lowest of each seed's last 5 epochs
    histories = [
        made_history([98.0] * 15 + [99.6] * 4 + [low], seed=s) for s, low in enumerate(lows)
    ]
    mean, spread = sum(lows) / 3, (sum((x - sum(lows) / 3) ** 2 for x in lows) / 2) ** 0.5
    assert over_seeds(histories) == (
        f"net: 2/3 seeds hold 99.40 % in each of the last 5 test epochs; their lowest "
        f"{mean:.2f} ± {spread:.2f} % (worst 99.36 %, seed 2)"
    )


def test_chance_difference_by_hand():
    lows = {"a": [99.50, 99.40, 99.45], "b": [99.30, 99.36, 99.33], "stuck": [11.35] * 3}
    groups = [
        [made_history([98.0] * 15 + [low] * 5, seed=s) for s, low in enumerate(v)]
        for v in lows.values()
    ]
    std, seeds, chance = chance_difference(groups)
    # variances 0.0025 and 0.0009 (the stuck group has no spread to pool): std sqrt(0.0017)
    assert seeds == 3 and std == pytest.approx(0.041231, abs=1e-6)
    assert chance == pytest.approx(0.067330, abs=1e-6)  # 2 * std * sqrt(2 / 3)
    assert all(math.isnan(x) for x in chance_difference(groups[2:])[::2])
    table = compare_table(dict(zip(lows, groups, strict=True)), base="a").splitlines()
    assert "-0.12" in table[2] and " yes " in table[2] and "0/3" in table[2]
