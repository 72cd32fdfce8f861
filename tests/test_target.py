"""The target check on hand-made histories: >= 99.40 % in each of the last 5 epochs, <= 20 epochs,
< 15k params."""

import re

import pytest
from helpers import made_history

from mnist_lib import check_target

GOOD_LAST_5 = [99.40, 99.45, 99.52, 99.41, 99.60]


def test_all_last_five_at_target_passes():
    result = check_target(made_history([97.0] * 10 + GOOD_LAST_5))  # early epochs do not count
    assert result.passed and result.reasons == []
    assert result.last_accs == GOOD_LAST_5 and result.epochs == 15 and result.params == 13_154
    assert result.line().endswith("target PASS") and "last 5 test acc" in result.line()


def test_one_epoch_at_99_39_fails():
    result = check_target(made_history([97.0] * 10 + [99.40, 99.45, 99.39, 99.41, 99.60]))
    assert not result.passed and len(result.reasons) == 1
    assert re.search(r"1 of the last 5 .*below 99\.40", result.reasons[0])
    assert "FAIL" in result.line() and result.reasons[0] in result.line()


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
    result = check_target(made_history(accs, params))
    assert not result.passed and len(result.reasons) == 1
    assert re.search(reason, result.reasons[0])


def test_limits_are_inclusive_where_the_target_says_so():
    assert check_target(made_history([99.5] * 15 + GOOD_LAST_5, params=14_999)).passed
    assert not check_target(made_history([99.5] * 11 + GOOD_LAST_5), max_epochs=15).passed


def test_a_validation_run_is_checked_on_its_validation_accuracies_and_says_so():
    result = check_target(made_history([99.5] * 10 + GOOD_LAST_5, val=10_000))
    assert result.passed and result.split == "val" and "last 5 val acc" in result.line()
