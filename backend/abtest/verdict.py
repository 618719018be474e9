"""The one-paragraph verdict of an analysis, in plain words.

Examples::

    B beats A on CTR (clicks/impressions, delta method, sequential): +2.8 pp (95% CS 1.2 to 4.4),
    +55.9% relative, p = 0.003; no SRM. Guardrails: no significant harm to purchases per user
    (one-sided p = 0.71; worst plausible change -0.012)
    B beats A on users who clicked: +0.8 pp (95% CI 0.3 to 1.3), p = 0.002; no SRM
    Sample ratio mismatch (p < 0.001): check assignment and logging before trusting this. ...
    Not enough data: variant B has no impressions.

Differences are treatment minus control, in percentage points (pp) for CTR and shares of users,
in the metric's units otherwise; the p-value is the deciding test's, Holm-adjusted when there
are several treatments. "CS" marks an always-valid confidence sequence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from backend.abtest.guardrails import GuardrailCheck
from backend.abtest.metrics import METRICS
from backend.abtest.results import Comparison, MetricComparison
from backend.abtest.srm import SrmResult

_PROPORTION_LABELS = {"click_users": "users who clicked", "ctr": "CTR per impression"}
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


def describe_comparison(
    comparison: Comparison, alpha: float, adjusted: bool, metric: str = "click_users"
) -> str:
    """One clause: who beats whom on the metric, by how much, with the interval and p-value."""
    t, c = comparison.treatment, comparison.control
    estimate = comparison.difference.estimate
    if comparison.decision == "undetermined" or estimate is None:
        reason = _first_reason(comparison) or "the test is undefined"
        return f"{t} vs {c}: cannot be tested ({reason})"
    ci = comparison.difference.ci
    half = None if ci.low is None or ci.high is None else (ci.high - ci.low) * 50
    decimals = _decimals(half)
    effect = f"{format_pp(estimate, decimals, sign=True)} pp"
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
    label = _PROPORTION_LABELS.get(metric, metric)
    return f"{_head(comparison, label)}: {effect}, {p_text}"


def _head(comparison: Comparison | MetricComparison, label: str) -> str:
    t, c = comparison.treatment, comparison.control
    if comparison.decision == "treatment_better":
        return f"{t} beats {c} on {label}"
    if comparison.decision == "treatment_worse":
        return f"{t} is worse than {c} on {label}"
    return f"no significant difference between {t} and {c} on {label}"


def format_value(value: float, decimals: int, *, percent: bool, sign: bool) -> str:
    """A difference in pp (``percent``) or in the metric's own units, e.g. ``+0.012``."""
    if percent:
        return format_pp(value, decimals, sign=sign)
    scaled = round(value, decimals)
    if scaled == 0:
        return f"{0.0:.{decimals}f}"
    return f"{scaled:+.{decimals}f}" if sign else f"{scaled:.{decimals}f}"


def _value_decimals(half_width: float | None, percent: bool) -> int:
    if not percent and half_width is not None and half_width > 0:
        return min(max(-math.floor(math.log10(half_width)) + 1, 0), 6)
    return _decimals(None if half_width is None else half_width * 100)


def describe_metric_comparison(
    comparison: MetricComparison, alpha: float, adjusted: bool, label: str, percent: bool
) -> str:
    """One clause for a per-user metric, naming the metric and the method."""
    head_label = f"{label} ({comparison.method})"
    diff = comparison.difference
    if comparison.decision == "undetermined" or diff.estimate is None:
        t, c = comparison.treatment, comparison.control
        return f"{t} vs {c} on {head_label}: cannot be tested ({diff.reason or 'undefined'})"
    ci = diff.ci
    assert ci.low is not None and ci.high is not None
    decimals = _value_decimals((ci.high - ci.low) / 2, percent)
    unit = " pp" if percent else ""
    kind = "CS" if diff.method == "sequential_cs" else "CI"
    low = format_value(ci.low, decimals, percent=percent, sign=False)
    high = format_value(ci.high, decimals, percent=percent, sign=False)
    effect = (
        f"{format_value(diff.estimate, decimals, percent=percent, sign=True)}{unit} "
        f"({(1 - alpha) * 100:g}% {kind} {low} to {high})"
    )
    lift = comparison.relative_lift.estimate
    if lift is not None:
        effect += f", {lift * 100:+.1f}% relative"
    p = comparison.p_value_adjusted
    assert p is not None
    p_text = format_p(p).replace("p", "Holm-adjusted p", 1) if adjusted else format_p(p)
    return f"{_head(comparison, head_label)}: {effect}, {p_text}"


def describe_guardrail(check: GuardrailCheck) -> str:
    """One clause per guardrail: no significant harm, significant harm, or why untested."""
    who = f"{check.label} ({check.treatment} vs {check.control})"
    figures = (check.harmed, check.bound, check.worst, check.estimate, check.p_harm)
    if any(f is None for f in figures):
        return f"not enough data to check {who} for harm ({check.reason})"
    assert check.bound is not None and check.worst is not None and check.estimate is not None
    assert check.p_harm is not None
    percent = check.metric in ("ctr", "click_users")
    decimals = _value_decimals(abs(check.bound - check.estimate), percent)
    unit = " pp" if percent else ""
    bound = format_value(check.bound, decimals, percent=percent, sign=True) + unit
    worst = format_value(check.worst, decimals, percent=percent, sign=True) + unit
    p = format_p(check.p_harm).replace("p", "one-sided p", 1)
    if check.harmed:
        estimate = format_value(check.estimate, decimals, percent=percent, sign=True) + unit
        side = "upper" if check.higher_is_better else "lower"
        return f"{who} is significantly harmed: {estimate} ({side} bound {bound}, {p})"
    return f"no significant harm to {who} ({p}; worst plausible change {worst})"


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
    comparisons: Sequence[Comparison] | Sequence[MetricComparison],
    srm: SrmResult,
    alpha: float,
    metric: str = "click_users",
    guardrails: Sequence[GuardrailCheck] = (),
) -> str:
    """The verdict. Thin data: its reasons (and an SRM warning if any). SRM: the warning, then
    the comparisons. Otherwise: the comparisons, then "no SRM". Guardrail checks follow."""
    if status != "ok":
        text = "Not enough data: " + "; ".join(reasons) + "."
        if srm.mismatch:
            text += f" {describe_srm(srm)}."
        return text
    adjusted = len(comparisons) > 1
    clauses = []
    for c in comparisons:
        if isinstance(c, MetricComparison):
            spec = METRICS[c.metric]
            clauses.append(describe_metric_comparison(c, alpha, adjusted, spec.label, spec.percent))
        else:
            clauses.append(describe_comparison(c, alpha, adjusted, metric))
    body = "; ".join(clauses)
    srm_text = describe_srm(srm)
    text = (
        f"{srm_text}. {_capitalise(body)}" if srm.mismatch else f"{_capitalise(body)}; {srm_text}"
    )
    if guardrails:
        text += ". Guardrails: " + "; ".join(describe_guardrail(g) for g in guardrails)
    return text
