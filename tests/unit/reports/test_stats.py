"""The pure statistics against numpy, and the regression rule on crafted series."""

from __future__ import annotations

import numpy as np
import pytest

from backend.jsonable import to_jsonable
from backend.reports.regression import check_regression
from backend.reports.stats import (
    box,
    chunk_bounds,
    median,
    ols_slope,
    percentile,
    sample_std,
    tukey_fences,
)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 20, 101])
def test_percentile_is_numpy_linear(n: int) -> None:
    x = np.sort(np.random.default_rng(n).exponential(size=n))
    for q in (0.0, 0.25, 0.5, 0.75, 0.95, 1.0):
        assert percentile(list(x), q) == pytest.approx(np.percentile(x, q * 100), rel=1e-12)
    assert median(list(x[::-1])) == pytest.approx(np.median(x), rel=1e-12)


def test_percentile_edges() -> None:
    assert percentile([3.0], 0.95) == 3.0
    # h = (2 - 1) * 0.95 = 0.95: 1 + 0.95 * (2 - 1)
    assert percentile([1.0, 2.0], 0.95) == pytest.approx(1.95)
    with pytest.raises(ValueError, match="empty"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        percentile([1.0], 95)


def test_std_slope_and_chunks_match_numpy() -> None:
    x = list(np.random.default_rng(1).normal(100.0, 1e-3, size=50))
    assert sample_std(x) == pytest.approx(np.std(x, ddof=1), rel=1e-9)
    assert sample_std([1.0]) is None
    y = [2.0 + 0.5 * i for i in range(10)]
    assert ols_slope(y) == pytest.approx(0.5)
    assert ols_slope([1.0]) is None
    for n, k in ((10, 3), (3, 10), (0, 10), (25, 10)):
        got = [stop - start for start, stop in chunk_bounds(n, k)]
        assert got == [len(c) for c in np.array_split(np.arange(n), min(k, n))] if n else got == []


def test_box_whiskers_and_outliers() -> None:
    data = sorted([1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 5.0, 30.0])
    q1, med, q3 = (percentile(data, q) for q in (0.25, 0.5, 0.75))
    b = box(data, q1, med, q3)
    low, high = tukey_fences(q1, q3)
    assert (low, high) == (q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1))
    assert low < 5.0 and high < 30.0  # 30 is outside, counted by the report (test_report_sqlite)
    assert b.whisker_high_s == 5.0 and b.whisker_low_s == 1.0


def test_regression_rule() -> None:
    flat = [1.0] * 20
    assert check_regression(flat, recent=10, factor=1.5).status == "ok"
    slower = [1.0] * 10 + [1.6] * 10
    r = check_regression(slower, recent=10, factor=1.5)
    assert r.flagged and r.ratio == pytest.approx(1.6) and r.status == "regressed"
    # Exactly at the threshold is not a regression (strictly greater).
    assert not check_regression([1.0] * 10 + [1.5] * 10, recent=10, factor=1.5).flagged
    short = check_regression([1.0] * 15, recent=10, factor=1.5)
    assert short.status == "not_enough_data" and "needs at least 20 runs" in short.reason
    assert check_regression([1.0] * 12, recent=10, factor=1.5, min_trailing=2).status == "ok"
    zero = check_regression([0.0] * 10 + [0.5] * 10, recent=10, factor=1.5)
    assert zero.flagged and zero.ratio is None


def test_the_stored_forms_of_a_box_and_a_regression_check() -> None:
    """A stored report carries these keys, in this order; older reports are read back as is."""
    assert to_jsonable(box([1.0, 2.0, 3.0], 1.5, 2.0, 2.5)) == {
        "q1_s": 1.5,
        "median_s": 2.0,
        "q3_s": 2.5,
        "whisker_low_s": 1.0,
        "whisker_high_s": 3.0,
    }
    check = to_jsonable(check_regression([1.0] * 10 + [1.6] * 10, recent=10, factor=1.5))
    assert list(check) == [
        "status", "flagged", "recent_runs", "trailing_runs", "recent_median_s",
        "trailing_median_s", "ratio", "factor", "reason",
    ]  # fmt: skip
    assert check["status"] == "regressed" and check["ratio"] == pytest.approx(1.6)
