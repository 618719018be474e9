"""Sample ratio mismatch against a hand-computed chi-square goodness of fit."""

from __future__ import annotations

import pytest
from scipy.stats import chi2

from backend.abtest.errors import AbTestInputError
from backend.abtest.srm import normalise_split, srm_check
from backend.jsonable import to_jsonable


def _by_hand(observed: list[int], shares: list[float]) -> tuple[float, float]:
    total = sum(observed)
    stat = sum((o - s * total) ** 2 / (s * total) for o, s in zip(observed, shares, strict=True))
    return stat, float(chi2.sf(stat, len(observed) - 1))


def test_equal_split_matches_the_formula() -> None:
    result = srm_check({"A": 10_000, "B": 10_300})
    stat, p = _by_hand([10_000, 10_300], [0.5, 0.5])
    assert result.statistic == pytest.approx(stat, abs=1e-9)
    assert result.p_value == pytest.approx(p, abs=1e-9)
    assert result.mismatch is (p < 0.001)


def test_configured_split_and_threshold() -> None:
    result = srm_check({"A": 2000, "B": 1000, "C": 1030}, {"A": 2, "B": 1, "C": 1}, 0.01)
    stat, p = _by_hand([2000, 1000, 1030], [0.5, 0.25, 0.25])
    assert result.p_value == pytest.approx(p, abs=1e-9) and result.statistic == pytest.approx(stat)
    assert result.expected_split == {"A": 0.5, "B": 0.25, "C": 0.25}
    assert result.mismatch is False and result.threshold == 0.01


def test_clear_mismatch_is_flagged() -> None:
    result = srm_check({"A": 10_000, "B": 9_000})
    assert result.mismatch is True and result.p_value is not None and result.p_value < 1e-10


def test_undefined_cases() -> None:
    assert srm_check({"A": 10}).reason == "only one variant, so there is no split to check"
    empty = srm_check({"A": 0, "B": 0})
    assert empty.mismatch is None and empty.reason == "no units in any variant"
    assert to_jsonable(empty)["p_value"] is None


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ({"A": 1}, "missing B"),
        ({"A": 1, "B": 1, "C": 1}, "has no counts for C"),
        ({"A": 1, "B": 0}, "weight of variant B must be a positive number"),
        ({"A": 1, "B": float("nan")}, "weight of variant B"),
    ],
)
def test_bad_split(split: dict[str, float], message: str) -> None:
    with pytest.raises(AbTestInputError, match=message):
        normalise_split(["A", "B"], split)


def test_bad_threshold() -> None:
    with pytest.raises(AbTestInputError, match="SRM threshold"):
        srm_check({"A": 1, "B": 1}, threshold=0)
