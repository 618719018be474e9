"""Ratio metrics such as CTR = clicks / impressions, with users as the unit of randomisation.

Per arm, with per-user numerators ``M`` (clicks) and denominators ``D`` (impressions) of its
``n`` users, sample (co)variances with ``n - 1``, ``m̄ = ΣM/n`` and ``d̄ = ΣD/n``::

    R  = ΣM / ΣD
    σ²_R = ( var(M) - 2R·cov(M, D) + R²·var(D) ) / d̄²       Var(R̂) = σ²_R / n   (delta method)

equivalently ``σ²_R = var(e)`` with ``e_i = (M_i - R·D_i)/d̄`` (Deng et al. 2018; gbstats
RatioStatistic). Users with no impression stay in ``n``. Analysing impressions as independent
trials instead (``√(R(1-R)/ΣD)``) understates the standard error whenever users see several
impressions and differ in taste, which makes intervals too narrow and p-values too small.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.abtest.welch import ArmStat


def delta_variance(mean_m: Any, mean_d: Any, var_m: Any, var_d: Any, cov_md: Any) -> Any:
    """Per-user delta-method variance ``σ²_R`` from moments (elementwise on arrays)."""
    r = np.asarray(mean_m, dtype=float) / mean_d
    return (var_m - 2.0 * r * cov_md + r * r * var_d) / np.asarray(mean_d, dtype=float) ** 2


def linearised(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Per-user linearised values ``e_i = (M_i - R·D_i)/d̄`` (zeros when ΣD = 0)."""
    m = np.asarray(numerator, dtype=float)
    d = np.asarray(denominator, dtype=float)
    total = d.sum()
    if total == 0:
        return np.zeros_like(m)
    return (m - m.sum() / total * d) / d.mean()


def ratio_arm(numerator: np.ndarray, denominator: np.ndarray) -> ArmStat:
    """The arm's ratio ``R`` (None when ΣD = 0) and its per-user delta variance ``σ²_R``."""
    m = np.asarray(numerator, dtype=float)
    d = np.asarray(denominator, dtype=float)
    n = len(m)
    if n == 0 or d.sum() == 0:
        return ArmStat(n, None, 0.0)
    e = linearised(m, d)
    variance = float(np.var(e, ddof=1)) if n >= 2 else 0.0
    # Exactly proportional users (M ∝ D) give a variance of pure rounding: call it 0.
    if variance <= (1e-12 * float(np.abs(m).max()) / float(d.mean())) ** 2:
        variance = 0.0
    return ArmStat(n, float(m.sum() / d.sum()), variance)
