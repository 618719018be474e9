"""CTR intervals, difference and lift against statsmodels."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from backend.abtest.errors import AbTestInputError
from backend.abtest.proportions import (
    difference,
    newcombe_interval,
    relative_lift,
    wilson_interval,
    z_critical,
)

CASES = [(0, 10), (1, 10), (10, 10), (3, 57), (480, 10_000), (12_345, 987_654), (1, 1)]
PAIRS = [
    (58, 1000, 50, 1000),
    (0, 200, 7, 180),
    (7, 180, 0, 200),
    (30, 30, 12, 40),
    (1, 3, 2, 5),
    (5_012, 100_000, 4_876, 101_234),
]


@pytest.mark.parametrize(("clicks", "n"), CASES)
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_wilson_matches_statsmodels(clicks: int, n: int, alpha: float) -> None:
    low, high = proportion_confint(clicks, n, alpha=alpha, method="wilson")
    ci = wilson_interval(clicks, n, alpha)
    assert ci.low == pytest.approx(low, abs=1e-9)
    assert ci.high == pytest.approx(high, abs=1e-9)
    assert ci.level == pytest.approx(1 - alpha)


def test_wilson_bounds_are_exact_at_the_edges() -> None:
    assert wilson_interval(0, 50).low == 0.0
    assert wilson_interval(50, 50).high == 1.0


def test_wilson_without_impressions_is_undefined_with_a_reason() -> None:
    ci = wilson_interval(0, 0)
    assert (ci.low, ci.high) == (None, None)
    assert ci.reason == "no impressions"


@given(st.integers(1, 10**7), st.data(), st.sampled_from([0.001, 0.05, 0.5]))
def test_wilson_contains_ctr_and_lies_in_unit_interval(n: int, data: st.DataObject, alpha: float):
    clicks = data.draw(st.integers(0, n))
    ci = wilson_interval(clicks, n, alpha)
    assert ci.low is not None and ci.high is not None
    assert 0.0 <= ci.low <= clicks / n <= ci.high <= 1.0


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_newcombe_matches_statsmodels_treatment_minus_control(
    pair: tuple[int, int, int, int], alpha: float
) -> None:
    xt, nt, xc, nc = pair
    # statsmodels: group 1 minus group 2, so the treatment goes first.
    low, high = confint_proportions_2indep(
        xt, nt, xc, nc, method="newcomb", compare="diff", alpha=alpha
    )
    ci = newcombe_interval(xt, nt, xc, nc, alpha)
    assert ci.low == pytest.approx(low, abs=1e-9)
    assert ci.high == pytest.approx(high, abs=1e-9)
    d = difference(xt, nt, xc, nc)
    assert d is not None and ci.low is not None and ci.high is not None
    assert ci.low <= d <= ci.high


def test_newcombe_is_positive_when_treatment_is_clearly_better() -> None:
    ci = newcombe_interval(300, 1000, 100, 1000)
    assert ci.low is not None and ci.low > 0


def test_difference_and_newcombe_without_impressions() -> None:
    assert difference(1, 0, 1, 10) is None
    assert newcombe_interval(0, 10, 0, 0).reason == "the control has no impressions"


@pytest.mark.parametrize("pair", [p for p in PAIRS if p[0] > 0 and p[2] > 0])
def test_relative_lift_matches_statsmodels_log_ratio(pair: tuple[int, int, int, int]) -> None:
    xt, nt, xc, nc = pair
    low, high = confint_proportions_2indep(xt, nt, xc, nc, method="log", compare="ratio")
    lift = relative_lift(xt, nt, xc, nc)
    assert lift.estimate == pytest.approx((xt / nt) / (xc / nc) - 1, abs=1e-12)
    assert lift.ci.low == pytest.approx(low - 1, abs=1e-9)
    assert lift.ci.high == pytest.approx(high - 1, abs=1e-9)


def test_relative_lift_with_zero_control_ctr_is_none_with_reason() -> None:
    lift = relative_lift(5, 100, 0, 100)
    assert lift.estimate is None and lift.ci.low is None
    assert lift.reason is not None and "control CTR is zero" in lift.reason


def test_relative_lift_with_zero_treatment_ctr_is_minus_one_without_interval() -> None:
    lift = relative_lift(0, 100, 5, 100)
    assert lift.estimate == -1.0
    assert lift.ci.low is None and lift.ci.reason is not None


def test_z_critical_and_bad_alpha() -> None:
    assert z_critical(0.05) == pytest.approx(1.959963984540054, abs=1e-12)
    for bad in (0.0, 1.0, -0.1, math.nan):
        with pytest.raises(AbTestInputError, match="alpha must be between 0 and 1"):
            wilson_interval(1, 10, bad)
