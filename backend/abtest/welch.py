"""Two-arm comparison of per-user statistics: Welch's t-test, its intervals, and the relative lift.

Each arm is reduced to an :class:`ArmStat`: ``n`` users, a point estimate ``μ`` (a mean, a ratio,
or a CUPED-adjusted value) and the per-user variance ``σ²`` of that estimate, so that
``Var(μ̂) = σ²/n``. Sign convention: treatment minus control. With ``T`` the treatment and ``C``
the control::

    Δ   = μ_T - μ_C                 V_Δ = σ²_T/n_T + σ²_C/n_C
    L   = (μ_T - μ_C) / |μ_C|       V_L = σ²_T/(n_T μ_C²) + σ²_C μ_T²/(n_C μ_C⁴)    (delta method)
    ν   = (σ²_T/n_T + σ²_C/n_C)² / (σ⁴_T/(n_T²(n_T-1)) + σ⁴_C/(n_C²(n_C-1)))       (Welch)
    t   = est/se,   p = 2(1 - F_t(|t|; ν)),   CI = est ± F_t⁻¹(1 - α/2; ν)·se

For per-user means this is ``scipy.stats.ttest_ind(y_T, y_C, equal_var=False)``. Absolute and
relative results share ν (built from the per-user variances, as gbstats does). With
``sequential`` set, the interval is the always-valid confidence sequence and the p-value the
always-valid one of :mod:`backend.abtest.sequential` (normal-based, no ν).

Undefined cases give ``None`` figures with a ``reason``: fewer than 2 users in an arm, zero
per-user variance in an arm (gbstats' ZERO_NEGATIVE_VARIANCE), or (relative only) a control
value of 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import t as t_dist

from backend.abtest import sequential as seq
from backend.abtest.proportions import Interval

EffectKind = Literal["absolute", "relative"]


@dataclass(frozen=True)
class ArmStat:
    """One arm of one metric: ``n`` users, estimate ``mean`` and per-user variance ``variance``."""

    n: int
    mean: float | None
    variance: float


@dataclass(frozen=True)
class Sequential:
    """Always-valid inference tuned by ``n_star`` (see ``backend.abtest.sequential``)."""

    n_star: float = seq.DEFAULT_N_STAR


@dataclass(frozen=True)
class Effect:
    """An effect with its standard error, test and interval; ``method`` is ``"welch_t"`` or
    ``"sequential_cs"``; figures are ``None`` (with ``reason``) when undefined."""

    kind: EffectKind
    estimate: float | None
    se: float | None
    dof: float | None
    statistic: float | None
    p_value: float | None
    ci: Interval
    method: str
    reason: str | None = None


def sample_variance(values: np.ndarray) -> float:
    """``Σ(x - x̄)²/(n - 1)`` from the centred values (0 when n < 2)."""
    return float(np.var(values, ddof=1)) if len(values) >= 2 else 0.0


def welch_dof(var_t: Any, n_t: Any, var_c: Any, n_c: Any) -> Any:
    """The Welch–Satterthwaite degrees of freedom ν from per-user variances (elementwise)."""
    a = np.asarray(var_t, dtype=float) / n_t
    b = np.asarray(var_c, dtype=float) / n_c
    return (a + b) ** 2 / (a * a / (np.asarray(n_t) - 1) + b * b / (np.asarray(n_c) - 1))


def infer(
    kind: EffectKind,
    estimate: float,
    variance: float,
    dof: float,
    n_total: int,
    alpha: float,
    sequential: Sequential | None,
) -> Effect:
    """t-test and interval of one estimate with variance ``variance`` (module formulas)."""
    level = 1.0 - alpha
    se = math.sqrt(variance)
    statistic = estimate / se
    if sequential is None:
        method = "welch_t"
        p = float(2.0 * t_dist.sf(abs(statistic), dof))
        half = float(t_dist.isf(alpha / 2.0, dof)) * se
    else:
        method = "sequential_cs"
        p = float(seq.p_value(estimate, se, n_total, alpha, sequential.n_star))
        half = float(seq.halfwidth(se, n_total, alpha, sequential.n_star))
    ci = Interval(estimate - half, estimate + half, level, method)
    return Effect(kind, estimate, se, dof, statistic, p, ci, method)


def undefined(kind: EffectKind, alpha: float, reason: str, sequential: Sequential | None) -> Effect:
    """An effect that cannot be estimated, with the reason."""
    method = "welch_t" if sequential is None else "sequential_cs"
    ci = Interval.undefined(1.0 - alpha, method, reason)
    return Effect(kind, None, None, None, None, None, ci, method, reason)


def arm_problem(arm: ArmStat, name: str) -> str | None:
    """Why an arm cannot be tested, or None."""
    if arm.n < 2:
        return f"fewer than 2 users in {name}"
    if arm.mean is None:
        return f"{name} has no value (no denominator)"
    if not arm.variance > 0:
        return f"zero variance in {name}"
    return None


def compare(
    treatment: ArmStat,
    control: ArmStat,
    *,
    names: tuple[str, str],
    alpha: float,
    sequential: Sequential | None = None,
    relative_variance: float | None = None,
    baseline: float | None = None,
) -> tuple[Effect, Effect]:
    """Absolute and relative effect of ``treatment`` over ``control`` (module formulas).

    ``baseline`` divides the relative lift (default the control's own value; CUPED passes the
    unadjusted control mean) and ``relative_variance`` replaces the module's ``V_L`` (CUPED
    passes its own). ``names`` are the arms' names for reasons.
    """
    problem = arm_problem(treatment, names[0]) or arm_problem(control, names[1])
    if problem is not None:
        return (
            undefined("absolute", alpha, problem, sequential),
            undefined("relative", alpha, problem, sequential),
        )
    assert treatment.mean is not None and control.mean is not None
    n_t, n_c = treatment.n, control.n
    n_total = n_t + n_c
    dof = float(welch_dof(treatment.variance, n_t, control.variance, n_c))
    delta = treatment.mean - control.mean
    v_abs = treatment.variance / n_t + control.variance / n_c
    absolute = infer("absolute", delta, v_abs, dof, n_total, alpha, sequential)
    base = control.mean if baseline is None else baseline
    if base == 0:
        reason = "the control value is 0, so a relative lift is undefined"
        return absolute, undefined("relative", alpha, reason, sequential)
    if relative_variance is None:
        relative_variance = treatment.variance / (
            n_t * base**2
        ) + control.variance * treatment.mean**2 / (n_c * base**4)
    relative = infer(
        "relative", delta / abs(base), relative_variance, dof, n_total, alpha, sequential
    )
    return absolute, relative
