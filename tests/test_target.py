"""The target check on hand-made histories: >= 99.40 % in each of the last 5 epochs, <= 20 epochs, < 15k params."""

import re

import pytest

from mnist_lib import check_target

GOOD_LAST_5 = [99.40, 99.45, 99.52, 99.41, 99.60]


def history(accs: list[float], params: int = 13_154) -> dict:
    return {"params": params, "epochs": [{"epoch": i + 1, "test_acc": a} for i, a in enumerate(accs)]}


def test_all_last_five_at_target_passes():
    result = check_target(history([97.0] * 10 + GOOD_LAST_5))  # early epochs below the target do not count
    assert result.passed and result.reasons == []
    assert result.last_accs == GOOD_LAST_5 and result.epochs == 15 and result.params == 13_154
    assert result.line().endswith("target PASS")


def test_one_epoch_at_99_39_fails():
    result = check_target(history([97.0] * 10 + [99.40, 99.45, 99.39, 99.41, 99.60]))
    assert not result.passed and len(result.reasons) == 1
    assert re.search(r"1 of the last 5 .*below 99\.40", result.reasons[0])
    assert "FAIL" in result.line() and result.reasons[0] in result.line()


@pytest.mark.parametrize(("accs", "params", "reason"), [
    ([99.5] * 16 + GOOD_LAST_5, 13_154, r"21 epochs > 20"),
    ([99.5] * 5, 15_000, r"15,000 params >= 15,000"),
    ([99.9] * 4, 13_154, r"only 4 epoch.*at least 5"),
], ids=["21-epochs", "15000-params", "4-epochs"])
def test_each_limit_fails_alone(accs, params, reason):
    result = check_target(history(accs, params))
    assert not result.passed and len(result.reasons) == 1
    assert re.search(reason, result.reasons[0])


def test_limits_are_inclusive_where_the_target_says_so():
    assert check_target(history([99.5] * 15 + GOOD_LAST_5, params=14_999)).passed  # 20 epochs, 14,999 params
    assert not check_target(history([99.5] * 11 + GOOD_LAST_5), max_epochs=15).passed  # the tiny model's budget
