"""CUPED: variance reduction with a pre-period covariate (Deng et al. 2013; gbstats' form).

Mean metric, post-period value ``Y`` and the same metric before the experiment ``X`` per user.
θ is estimated once on both arms pooled as one sample (the treatment is ignored)::

    θ = cov(X, Y) / var(X)                       (0, i.e. no adjustment, if var(X) or var(Y) is 0)
    adj = ȳ - θ·x̄,     σ²_adj = var(Y - θX) = var(Y) + θ² var(X) - 2θ cov(X, Y)     per arm

The absolute effect is a Welch test on ``(adj, σ²_adj)``. The relative lift divides by the
*unadjusted* control mean, ``L = (adj_T - adj_C)/|ȳ_C|``, with::

    V_L = σ²_adj,T/(n_T ȳ_C²)
        + [var_C(Y) ȳ_T²/ȳ_C² - 2θ cov_C(X,Y) ȳ_T/ȳ_C + θ² var_C(X)] / (n_C ȳ_C²)

Ratio metric ``R = ΣM/ΣD`` with pre-period ``R' = ΣM'/ΣD'``. With the linearised per-user values
``u = (M - R·D)/d̄`` and ``w = (M' - R'·D')/d̄'`` of each arm::

    θ = (cov_C(u, w) + cov_T(u, w)) / (var_C(w) + var_T(w))       (0 when |θ| < 1e-8)
    adj = R - θ·R',     σ²_adj = var(u - θw)

and the relative variance uses ``g = |R_C|``, ``a = (adj_T - adj_C)·sign(R_C)``::

    V_L = var(-(g + a)/g² · u_C + θ/g · w_C)/n_C + var((u_T - θ w_T)/g)/n_T

(gbstats' ``frequentist_variance_relative_cuped_ratio`` written on per-user values). The
variance reduction achieved is ``1 - V_adj/V_unadj`` of the absolute effect; it approximates the
squared correlation of pre and post values and can be slightly negative in small samples,
meaning CUPED did not help.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.abtest.ratio import linearised
from backend.abtest.welch import ArmStat, sample_variance

#: Below this |θ| the ratio adjustment is dropped (gbstats' rule).
MIN_THETA = 1e-8


@dataclass(frozen=True)
class CupedArms:
    """The adjusted arms, θ, and what the relative lift needs (its baseline and variance)."""

    theta: float
    treatment: ArmStat
    control: ArmStat
    baseline: float | None
    relative_variance: float | None


def _cov(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.cov(a, b, ddof=1)[0, 1]) if len(a) >= 2 else 0.0


def _clamp(adjusted: float, unadjusted: float) -> float:
    # A perfect covariate leaves a variance of pure rounding: call it 0 (zero variance).
    return 0.0 if adjusted <= 1e-12 * unadjusted else adjusted


def mean_theta(y: np.ndarray, x: np.ndarray) -> float:
    """θ = cov(X, Y)/var(X) over all users of both arms (0 without variation in X or Y)."""
    if sample_variance(x) <= 0 or sample_variance(y) <= 0:
        return 0.0
    return _cov(x, y) / sample_variance(x)


def cuped_means(y_t: np.ndarray, x_t: np.ndarray, y_c: np.ndarray, x_c: np.ndarray) -> CupedArms:
    """CUPED on a per-user mean metric (module formulas)."""
    y_t, x_t, y_c, x_c = (np.asarray(a, dtype=float) for a in (y_t, x_t, y_c, x_c))
    theta = mean_theta(np.concatenate([y_t, y_c]), np.concatenate([x_t, x_c]))

    def arm(y: np.ndarray, x: np.ndarray) -> ArmStat:
        mean = float(y.mean() - theta * x.mean()) if len(y) else None
        return ArmStat(len(y), mean, _clamp(sample_variance(y - theta * x), sample_variance(y)))

    treatment, control = arm(y_t, x_t), arm(y_c, x_c)
    if len(y_c) == 0 or len(y_t) == 0 or y_c.mean() == 0:
        return CupedArms(theta, treatment, control, None, None)
    yc, yt = float(y_c.mean()), float(y_t.mean())
    control_term = (
        sample_variance(y_c) * yt**2 / yc**2
        - 2.0 * theta * _cov(x_c, y_c) * yt / yc
        + theta**2 * sample_variance(x_c)
    )
    relative = treatment.variance / (len(y_t) * yc**2) + control_term / (len(y_c) * yc**2)
    return CupedArms(theta, treatment, control, yc, relative)


def cuped_ratios(
    post_t: tuple[np.ndarray, np.ndarray],
    pre_t: tuple[np.ndarray, np.ndarray],
    post_c: tuple[np.ndarray, np.ndarray],
    pre_c: tuple[np.ndarray, np.ndarray],
) -> CupedArms:
    """CUPED on a ratio metric; each argument is (numerators, denominators) per user."""
    u_t, w_t = linearised(*post_t), linearised(*pre_t)
    u_c, w_c = linearised(*post_c), linearised(*pre_c)
    denominator = sample_variance(w_c) + sample_variance(w_t)
    theta = (_cov(u_c, w_c) + _cov(u_t, w_t)) / denominator if denominator > 0 else 0.0
    if abs(theta) < MIN_THETA:
        theta = 0.0

    def ratio(pair: tuple[np.ndarray, np.ndarray]) -> float | None:
        total = float(np.sum(pair[1]))
        return float(np.sum(pair[0])) / total if total else None

    r_t, r_c = ratio(post_t), ratio(post_c)
    rp_t, rp_c = ratio(pre_t) or 0.0, ratio(pre_c) or 0.0
    adj_t = None if r_t is None else r_t - theta * rp_t
    adj_c = None if r_c is None else r_c - theta * rp_c
    treatment = ArmStat(
        len(u_t), adj_t, _clamp(sample_variance(u_t - theta * w_t), sample_variance(u_t))
    )
    control = ArmStat(
        len(u_c), adj_c, _clamp(sample_variance(u_c - theta * w_c), sample_variance(u_c))
    )
    if r_c is None or r_c == 0 or adj_t is None or adj_c is None:
        return CupedArms(theta, treatment, control, r_c, None)
    g = abs(r_c)
    a = (adj_t - adj_c) * np.sign(r_c)
    z_c = -(g + a) / g**2 * u_c + theta / g * w_c
    z_t = (u_t - theta * w_t) / g
    relative = sample_variance(z_c) / len(u_c) + sample_variance(z_t) / len(u_t)
    return CupedArms(theta, treatment, control, r_c, relative)


def variance_reduction(adjusted: float | None, unadjusted: float | None) -> float | None:
    """``1 - V_adj/V_unadj`` of an effect's variance (None when either is undefined or 0)."""
    if adjusted is None or unadjusted is None or unadjusted <= 0:
        return None
    return 1.0 - adjusted / unadjusted
