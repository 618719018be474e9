"""z-test, chi-square and Fisher against statsmodels, scipy and the textbook formulas."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chi2, hypergeom
from statsmodels.stats.proportion import proportions_ztest

from backend.abtest.significance import (
    chi_square_test,
    expected_counts,
    fisher_exact_test,
    min_expected_count,
    needs_exact_test,
    two_proportion_ztest,
)

TABLES = [
    (58, 1000, 50, 1000),
    (0, 200, 7, 180),
    (30, 30, 12, 40),
    (1, 3, 2, 5),
    (5_012, 100_000, 4_876, 101_234),
    (3, 40, 9, 41),
]


@pytest.mark.parametrize("table", TABLES)
def test_ztest_matches_statsmodels(table: tuple[int, int, int, int]) -> None:
    xt, nt, xc, nc = table
    z, p = proportions_ztest([xt, xc], [nt, nc])
    result = two_proportion_ztest(xt, nt, xc, nc)
    assert result.statistic == pytest.approx(z, abs=1e-9)
    assert result.p_value == pytest.approx(p, abs=1e-9)


def _pearson(table: tuple[int, int, int, int], yates: bool) -> tuple[float, float]:
    xt, nt, xc, nc = table
    observed = [[xt, nt - xt], [xc, nc - xc]]
    expected = expected_counts(xt, nt, xc, nc)
    stat = 0.0
    for o_row, e_row in zip(observed, expected, strict=True):
        for o, e in zip(o_row, e_row, strict=True):
            gap = abs(o - e)
            if yates:
                gap = max(gap - 0.5, 0.0)
            stat += gap * gap / e
    return stat, float(chi2.sf(stat, 1))


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("yates", [False, True])
def test_chi_square_matches_the_textbook_formula(
    table: tuple[int, int, int, int], yates: bool
) -> None:
    stat, p = _pearson(table, yates)
    result = chi_square_test(*table, yates=yates)
    assert result.statistic == pytest.approx(stat, abs=1e-9)
    assert result.p_value == pytest.approx(p, abs=1e-9)
    assert result.yates is yates


@pytest.mark.parametrize("table", TABLES)
def test_chi_square_without_correction_is_the_squared_z(table: tuple[int, int, int, int]) -> None:
    z = two_proportion_ztest(*table)
    c = chi_square_test(*table)
    assert z.statistic is not None and c.statistic is not None
    assert c.statistic == pytest.approx(z.statistic**2, rel=1e-9)
    assert c.p_value == pytest.approx(z.p_value, abs=1e-9)


def _fisher_by_hand(table: tuple[int, int, int, int]) -> float:
    # Two-sided: the total probability of tables no more likely than the observed one.
    xt, nt, xc, nc = table
    clicks = xt + xc
    dist = hypergeom(nt + nc, nt, clicks)
    observed = dist.pmf(xt)
    lo, hi = max(0, clicks - nc), min(nt, clicks)
    return float(
        sum(dist.pmf(k) for k in range(lo, hi + 1) if dist.pmf(k) <= observed * (1 + 1e-7))
    )


@pytest.mark.parametrize("table", [*TABLES[:4], TABLES[5], (0, 10, 0, 12)])
def test_fisher_matches_the_hypergeometric_sum(table: tuple[int, int, int, int]) -> None:
    result = fisher_exact_test(*table)
    assert result.p_value == pytest.approx(min(_fisher_by_hand(table), 1.0), abs=1e-9)


def test_fisher_odds_ratio_and_undefined_odds() -> None:
    result = fisher_exact_test(3, 40, 9, 41)
    assert result.statistic == pytest.approx(3 * 32 / (37 * 9), rel=1e-12)
    empty_column = fisher_exact_test(0, 10, 0, 12)
    assert empty_column.statistic is None and empty_column.p_value == 1.0


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        ((0, 100, 0, 100), "no clicks in either variant"),
        ((100, 100, 50, 50), "every impression was clicked in both variants"),
        ((0, 0, 5, 100), "a variant has no impressions"),
    ],
)
def test_undefined_tests_give_none_and_a_reason(
    table: tuple[int, int, int, int], reason: str
) -> None:
    for result in (two_proportion_ztest(*table), chi_square_test(*table)):
        assert result.statistic is None and result.p_value is None
        assert result.reason == reason


def test_exact_test_rule_uses_expected_counts_below_five() -> None:
    assert min_expected_count(3, 40, 9, 41) == pytest.approx(12 * 40 / 81)
    assert needs_exact_test(3, 40, 9, 41) is False
    assert needs_exact_test(1, 40, 2, 41) is True
    assert needs_exact_test(0, 0, 2, 41) is True


counts = st.integers(1, 5_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(counts, counts)
def test_swapping_groups_flips_the_difference_and_keeps_p(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    from backend.abtest.proportions import difference

    forward, backward = two_proportion_ztest(*a, *b), two_proportion_ztest(*b, *a)
    d_forward, d_backward = difference(*a, *b), difference(*b, *a)
    assert d_forward is not None and d_backward is not None
    assert d_forward == -d_backward
    if forward.p_value is None:
        assert backward.p_value is None
    else:
        assert backward.p_value is not None
        assert math.isclose(forward.p_value, backward.p_value, rel_tol=1e-12, abs_tol=1e-15)
    fisher_forward, fisher_backward = fisher_exact_test(*a, *b), fisher_exact_test(*b, *a)
    assert fisher_forward.p_value == pytest.approx(fisher_backward.p_value, abs=1e-12)
