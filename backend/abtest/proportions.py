"""Click-through rates, their intervals, and the difference and lift between two variants.

Sign convention everywhere: *treatment minus control* (``p_t - p_c``) and *treatment over
control* (``p_t / p_c``), so a positive difference or lift means the treatment has the higher CTR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm

from backend.abtest.errors import AbTestInputError


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise AbTestInputError(f"alpha must be between 0 and 1 (exclusive); got {alpha!r}")
    return float(alpha)


def z_critical(alpha: float) -> float:
    """The two-sided normal critical value ``z_{1-α/2}`` (1.959963984540054 at α = 0.05)."""
    return float(norm.isf(_check_alpha(alpha) / 2.0))


@dataclass(frozen=True)
class Interval:
    """A two-sided ``level`` confidence interval, or ``low = high = None`` with a ``reason``."""

    low: float | None
    high: float | None
    level: float
    method: str
    reason: str | None = None

    @classmethod
    def undefined(cls, level: float, method: str, reason: str) -> Interval:
        return cls(None, None, level, method, reason)


def wilson_interval(clicks: int, impressions: int, alpha: float = 0.05) -> Interval:
    """Wilson score interval for a binomial proportion ``p̂ = x / n``.

    With ``z = z_{1-α/2}``::

        centre    = (p̂ + z²/(2n)) / (1 + z²/n)
        halfwidth = z · sqrt(p̂(1-p̂)/n + z²/(4n²)) / (1 + z²/n)

    The interval is ``centre ± halfwidth``. It always lies in [0, 1] and contains ``p̂``; at
    ``x = 0`` the lower bound is exactly 0 and at ``x = n`` the upper bound is exactly 1 (set
    exactly, so rounding cannot push them outside). ``n = 0``: undefined, with a reason.
    """
    level = 1.0 - _check_alpha(alpha)
    if impressions == 0:
        return Interval.undefined(level, "wilson", "no impressions")
    z = z_critical(alpha)
    n = float(impressions)
    p = clicks / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    low = 0.0 if clicks == 0 else min(max(centre - half, 0.0), p)
    high = 1.0 if clicks == impressions else max(min(centre + half, 1.0), p)
    return Interval(low, high, level, "wilson")


def difference(clicks_t: int, n_t: int, clicks_c: int, n_c: int) -> float | None:
    """Absolute CTR difference ``p_t - p_c``; ``None`` when either variant has no impressions."""
    if n_t == 0 or n_c == 0:
        return None
    return clicks_t / n_t - clicks_c / n_c


def newcombe_interval(
    clicks_t: int, n_t: int, clicks_c: int, n_c: int, alpha: float = 0.05
) -> Interval:
    """Newcombe's hybrid score interval (his method 10) for ``d = p_t - p_c``.

    With Wilson intervals ``(l_t, u_t)`` and ``(l_c, u_c)`` at the same α::

        low  = d - sqrt((p_t - l_t)² + (u_c - p_c)²)
        high = d + sqrt((u_t - p_t)² + (p_c - l_c)²)

    This is ``confint_proportions_2indep(t, n_t, c, n_c, method="newcomb", compare="diff")`` of
    statsmodels with the treatment as group 1. It stays within [-1, 1] and is defined for zero
    clicks; undefined (with a reason) only when a variant has no impressions.
    """
    level = 1.0 - _check_alpha(alpha)
    wilson_t = wilson_interval(clicks_t, n_t, alpha)
    wilson_c = wilson_interval(clicks_c, n_c, alpha)
    if wilson_t.low is None or wilson_c.low is None:
        which = "treatment" if wilson_t.low is None else "control"
        return Interval.undefined(level, "newcombe", f"the {which} has no impressions")
    assert wilson_t.high is not None and wilson_c.high is not None
    p_t, p_c = clicks_t / n_t, clicks_c / n_c
    d = p_t - p_c
    low = d - math.hypot(p_t - wilson_t.low, wilson_c.high - p_c)
    high = d + math.hypot(wilson_t.high - p_t, p_c - wilson_c.low)
    return Interval(low, high, level, "newcombe")


@dataclass(frozen=True)
class RelativeLift:
    """Relative lift ``p_t / p_c - 1`` with its interval ``ci``; ``estimate`` None if undefined."""

    estimate: float | None
    ci: Interval
    reason: str | None = None


def relative_lift(
    clicks_t: int, n_t: int, clicks_c: int, n_c: int, alpha: float = 0.05
) -> RelativeLift:
    """Relative lift ``R - 1`` where ``R = p_t / p_c``, with a delta-method interval on log R.

    The delta method is applied to the *log* of the ratio (not to R directly), because log R is
    much closer to normal and the back-transformed interval stays above -100%::

        Var(log R̂) ≈ (1 - p_t)/(n_t p_t) + (1 - p_c)/(n_c p_c)
                   = 1/x_t - 1/n_t + 1/x_c - 1/n_c
        interval   = exp(log R̂ ± z_{1-α/2} · sqrt(Var)) - 1

    This is statsmodels' ``confint_proportions_2indep(..., compare="ratio", method="log")``
    minus one. Edge cases: no impressions in a variant, or zero control CTR, make the lift
    undefined (``None`` with a reason); zero treatment CTR gives a lift of exactly -100% but no
    interval, because log 0 is undefined.
    """
    level = 1.0 - _check_alpha(alpha)
    method = "delta-log-ratio"
    if n_t == 0 or n_c == 0:
        reason = "a variant has no impressions"
        return RelativeLift(None, Interval.undefined(level, method, reason), reason)
    if clicks_c == 0:
        reason = "the control CTR is zero, so a relative lift is undefined"
        return RelativeLift(None, Interval.undefined(level, method, reason), reason)
    p_t, p_c = clicks_t / n_t, clicks_c / n_c
    lift = p_t / p_c - 1.0
    if clicks_t == 0:
        reason = "the treatment CTR is zero, so the log-ratio interval is undefined"
        return RelativeLift(lift, Interval.undefined(level, method, reason), reason)
    variance = 1.0 / clicks_t - 1.0 / n_t + 1.0 / clicks_c - 1.0 / n_c
    half = z_critical(alpha) * math.sqrt(max(variance, 0.0))
    log_ratio = math.log(p_t) - math.log(p_c)
    interval = Interval(math.expm1(log_ratio - half), math.expm1(log_ratio + half), level, method)
    return RelativeLift(lift, interval)
