"""The one-paragraph verdict of an analysis, in plain words.

Examples::

    B beats A: +0.8 pp CTR (95% CI 0.3 to 1.3), p = 0.002; no SRM
    No significant difference between B and A: +0.2 pp CTR (95% CI -0.3 to 0.7), p = 0.41; no SRM
    Sample ratio mismatch (p < 0.001): check assignment and logging before trusting this. ...
    Not enough data: variant B has no impressions.

Differences are treatment minus control in percentage points (pp) of CTR, with the Newcombe
interval; the p-value is the deciding test's, Holm-adjusted when there are several treatments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from backend.abtest.results import Comparison
from backend.abtest.srm import SrmResult

_TEST_NAMES = {"z": "", "chi_square": "chi-square", "fisher": "Fisher's exact test"}


def format_p(p: float) -> str:
    """``"p < 0.001"`` below 0.001, three significant digits below 0.1, else two decimals."""
    if p < 0.001:
        return "p < 0.001"
    if p < 0.1:
        return f"p = {p:.3g}"
    return f"p = {p:.2f}"


def _decimals(half_width_pp: float | None) -> int:
    # Enough decimals to show the interval's width, between 1 and 4.
    if half_width_pp is None or half_width_pp <= 0:
        return 1
    return min(max(-math.floor(math.log10(half_width_pp)), 1), 4)


def format_pp(value: float, decimals: int, *, sign: bool) -> str:
    """A CTR difference (a fraction) in percentage points, e.g. ``+0.8``; zero has no sign."""
    scaled = round(value * 100, decimals)
    if scaled == 0:
        return f"{0.0:.{decimals}f}"
    return f"{scaled:+.{decimals}f}" if sign else f"{scaled:.{decimals}f}"


def describe_comparison(comparison: Comparison, alpha: float, adjusted: bool) -> str:
    """One clause: who beats whom, by how much, with the interval and the p-value."""
    t, c = comparison.treatment, comparison.control
    estimate = comparison.difference.estimate
    if comparison.decision == "undetermined" or estimate is None:
        reason = _first_reason(comparison) or "the test is undefined"
        return f"{t} vs {c}: cannot be tested ({reason})"
    ci = comparison.difference.ci
    half = None if ci.low is None or ci.high is None else (ci.high - ci.low) * 50
    decimals = _decimals(half)
    effect = f"{format_pp(estimate, decimals, sign=True)} pp CTR"
    if ci.low is not None and ci.high is not None:
        level = f"{(1 - alpha) * 100:g}%"
        low = format_pp(ci.low, decimals, sign=False)
        high = format_pp(ci.high, decimals, sign=False)
        effect += f" ({level} CI {low} to {high})"
    p = comparison.p_value_adjusted
    assert p is not None
    p_text = format_p(p).replace("p", "Holm-adjusted p", 1) if adjusted else format_p(p)
    test_name = _TEST_NAMES.get(comparison.primary_test, comparison.primary_test)
    if test_name:
        p_text += f", {test_name}"
    if comparison.decision == "treatment_better":
        head = f"{t} beats {c}"
    elif comparison.decision == "treatment_worse":
        head = f"{t} is worse than {c}"
    else:
        head = f"no significant difference between {t} and {c}"
    return f"{head}: {effect}, {p_text}"


def _first_reason(comparison: Comparison) -> str | None:
    tests = comparison.tests
    for test in (tests.z, tests.chi_square, tests.fisher):
        if test is not None and test.reason:
            return test.reason
    return None


def describe_srm(srm: SrmResult) -> str:
    """``"no SRM"``, a warning naming the p-value, or why the check could not run."""
    if srm.mismatch is None:
        return f"SRM not checked ({srm.reason})"
    assert srm.p_value is not None
    if srm.mismatch:
        return (
            f"Sample ratio mismatch ({format_p(srm.p_value)}): check assignment and logging "
            "before trusting these results"
        )
    return "no SRM"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def write_verdict(
    status: str,
    reasons: Sequence[str],
    comparisons: Sequence[Comparison],
    srm: SrmResult,
    alpha: float,
) -> str:
    """The verdict. Thin data: its reasons (and an SRM warning if any). SRM: the warning, then
    the comparisons. Otherwise: the comparisons, then "no SRM"."""
    if status != "ok":
        text = "Not enough data: " + "; ".join(reasons) + "."
        if srm.mismatch:
            text += f" {describe_srm(srm)}."
        return text
    clauses = [describe_comparison(c, alpha, adjusted=len(comparisons) > 1) for c in comparisons]
    body = "; ".join(clauses)
    srm_text = describe_srm(srm)
    if srm.mismatch:
        return f"{srm_text}. {_capitalise(body)}"
    return f"{_capitalise(body)}; {srm_text}"
