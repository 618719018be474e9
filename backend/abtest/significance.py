"""Frequentist tests of "the treatment CTR equals the control CTR" on one 2×2 table.

Every test takes the same four counts, treatment first, and reads them as the table::

                 clicked     not clicked
    treatment    x_t         n_t - x_t
    control      x_c         n_c - x_c

All p-values are two-sided. A test that is undefined for the counts (e.g. no clicks at all)
returns ``statistic = p_value = None`` with a ``reason``; it never returns NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2_contingency, fisher_exact, norm

#: Below this expected cell count the chi-square approximation is distrusted (Cochran's rule).
MIN_EXPECTED_COUNT = 5.0


@dataclass(frozen=True)
class TestResult:
    """The outcome of one test: its statistic (named by ``statistic_name``) and p-value."""

    __test__ = False  # not a pytest test class, whatever its name says

    test: str
    statistic_name: str
    statistic: float | None
    p_value: float | None
    reason: str | None = None


@dataclass(frozen=True)
class ChiSquareResult(TestResult):
    """The chi-square test's outcome with its settings: Yates' correction, degrees of freedom."""

    yates: bool = False
    dof: int = 1


def contingency_table(clicks_t: int, n_t: int, clicks_c: int, n_c: int) -> list[list[int]]:
    """The 2×2 table above: rows treatment, control; columns clicked, not clicked."""
    return [[clicks_t, n_t - clicks_t], [clicks_c, n_c - clicks_c]]


def expected_counts(clicks_t: int, n_t: int, clicks_c: int, n_c: int) -> list[list[float]]:
    """Expected cell counts under independence: ``E_ij = row_i · column_j / N`` (zeros if N = 0)."""
    table = np.asarray(contingency_table(clicks_t, n_t, clicks_c, n_c), dtype=float)
    total = table.sum()
    if total == 0:
        return [[0.0, 0.0], [0.0, 0.0]]
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    return [[float(v) for v in row] for row in expected]


def min_expected_count(clicks_t: int, n_t: int, clicks_c: int, n_c: int) -> float:
    """The smallest expected cell count of the table (0 when a row or column is empty)."""
    return min(min(row) for row in expected_counts(clicks_t, n_t, clicks_c, n_c))


def needs_exact_test(clicks_t: int, n_t: int, clicks_c: int, n_c: int) -> bool:
    """True when any expected cell count is below 5, where Fisher's exact test should decide."""
    return min_expected_count(clicks_t, n_t, clicks_c, n_c) < MIN_EXPECTED_COUNT


def _undefined_reason(clicks_t: int, n_t: int, clicks_c: int, n_c: int) -> str | None:
    if n_t == 0 or n_c == 0:
        return "a variant has no impressions"
    if clicks_t + clicks_c == 0:
        return "no clicks in either variant"
    if clicks_t + clicks_c == n_t + n_c:
        return "every impression was clicked in both variants"
    return None


def two_proportion_ztest(clicks_t: int, n_t: int, clicks_c: int, n_c: int) -> TestResult:
    """Two-proportion z-test with the pooled variance under H0: ``p_t = p_c``.

    ::

        p̄ = (x_t + x_c) / (n_t + n_c)
        z = (p_t - p_c) / sqrt(p̄ (1 - p̄) (1/n_t + 1/n_c))
        p = 2 · (1 - Φ(|z|))

    Identical to statsmodels' ``proportions_ztest([x_t, x_c], [n_t, n_c])``; ``z²`` equals
    Pearson's chi-square without continuity correction. Undefined when a variant has no
    impressions or when ``p̄`` is 0 or 1 (no clicks, or only clicks: the standard error is 0).
    """
    reason = _undefined_reason(clicks_t, n_t, clicks_c, n_c)
    if reason is not None:
        return TestResult("z", "z", None, None, reason)
    pooled = (clicks_t + clicks_c) / (n_t + n_c)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_t + 1.0 / n_c))
    z = (clicks_t / n_t - clicks_c / n_c) / se
    return TestResult("z", "z", z, float(2.0 * norm.sf(abs(z))))


def chi_square_test(
    clicks_t: int, n_t: int, clicks_c: int, n_c: int, *, yates: bool = False
) -> ChiSquareResult:
    """Pearson's chi-square test of independence on the 2×2 table (1 degree of freedom).

    ``χ² = Σ (O - E)² / E`` over the four cells, or with Yates' continuity correction
    (``yates=True``) ``Σ (|O - E| - ½)² / E``, computed by ``scipy.stats.chi2_contingency``
    (which caps the correction so it never overshoots ``|O - E|``). Undefined when any expected
    count is zero, i.e. a variant has no impressions or a column (clicks or non-clicks) is empty.
    """
    reason = _undefined_reason(clicks_t, n_t, clicks_c, n_c)
    if reason is not None:
        return ChiSquareResult("chi_square", "chi2", None, None, reason, yates=yates)
    table = contingency_table(clicks_t, n_t, clicks_c, n_c)
    result = chi2_contingency(table, correction=yates)
    return ChiSquareResult(
        "chi_square", "chi2", float(result.statistic), float(result.pvalue), None, yates=yates
    )


def fisher_exact_test(clicks_t: int, n_t: int, clicks_c: int, n_c: int) -> TestResult:
    """Fisher's exact test (two-sided, conditional on both margins) by ``scipy.stats.fisher_exact``.

    The statistic is the sample odds ratio ``x_t (n_c - x_c) / ((n_t - x_t) x_c)``, reported as
    ``None`` when it is 0/0 or infinite; the p-value is always defined when both variants have
    impressions (it is 1 when a column is empty).
    """
    if n_t == 0 or n_c == 0:
        return TestResult("fisher", "odds_ratio", None, None, "a variant has no impressions")
    result = fisher_exact(contingency_table(clicks_t, n_t, clicks_c, n_c))
    statistic = float(result.statistic)
    odds = statistic if math.isfinite(statistic) else None
    reason = None if odds is not None else "the odds ratio is undefined (a zero cell)"
    return TestResult("fisher", "odds_ratio", odds, float(result.pvalue), reason)
