"""Always-valid inference: asymptotic confidence sequences (GrowthBook's gbstats form).

The confidence sequence of Waudby-Smith et al. (arXiv 2103.06476, eq. 9 and 161) wraps an
estimate ``est`` with standard error ``se`` computed from ``N`` units (both arms together) so that,
with probability ``1 - α``, the true effect lies inside it at *every* look at once. A live page
can therefore be refreshed as often as one likes without inflating the false-positive rate.

With the tuning parameter ``N*`` (the total sample size at which one expects to decide; the
sequence is tightest there and must stay fixed for the whole experiment)::

    ρ  = sqrt( (-2 ln α + ln(-2 ln α + 1)) / N* )
    s² = se² · N
    halfwidth = sqrt( s² · 2(Nρ² + 1)/(N²ρ²) · ln( sqrt(Nρ² + 1)/α ) )
    E  = exp( ρ² · est²·N/se² / (2(Nρ² + 1)) ) / sqrt(Nρ² + 1)       p = min(1, 1/E)

``0`` lies outside ``est ± halfwidth`` exactly when ``p < α``. This is the mixture SPRT (mSPRT,
Johari et al.) with a normal mixing prior of variance ``τ² = ρ²s²``. The one-sided form (eq. 134,
with α replaced by 2α inside ρ) bounds the effect on one side only, for harm checks::

    halfwidth₁ = sqrt( s² · 2(Nρ₁² + 1)/(N²ρ₁²) · ln(1 + sqrt(Nρ₁² + 1)/(2α)) )
    p₁ = min(1, sqrt(Nρ₁² + 1) / (2·(e^A - 1))),   A = est²·N·ρ₁² / (2·se²·(Nρ₁² + 1))

for an estimate in the tested direction (``p₁ = 1`` otherwise; gbstats bisects for it and
reports 0.4999 there). Every function works elementwise on NumPy arrays as well as on floats.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from backend.abtest.errors import AbTestInputError

#: Default N*: the total units (both arms) at which the sequence is tightest (gbstats' default).
DEFAULT_N_STAR = 5000.0


def check_sequential(alpha: float, n_star: float, *, one_sided: bool = False) -> None:
    """Raise for an α outside (0, 1) (below 0.5 one-sided) or a non-positive ``N*``."""
    if not 0.0 < alpha < (0.5 if one_sided else 1.0):
        bound = "0.5" if one_sided else "1"
        raise AbTestInputError(f"sequential alpha must lie between 0 and {bound}; got {alpha!r}")
    if not (isinstance(n_star, int | float) and math.isfinite(n_star) and n_star > 0):
        raise AbTestInputError(f"n_star (N*) must be a positive number of units; got {n_star!r}")


def sequential_rho(alpha: float, n_star: float, *, two_sided: bool = True) -> float:
    """``ρ = sqrt((-2 ln a + ln(-2 ln a + 1)) / N*)`` with ``a = α`` (two-sided) or ``2α``."""
    a = alpha if two_sided else 2.0 * alpha
    return math.sqrt((-2.0 * math.log(a) + math.log(-2.0 * math.log(a) + 1.0)) / n_star)


def halfwidth(se: Any, n_total: Any, alpha: float, n_star: float) -> Any:
    """The two-sided confidence-sequence half-width around the estimate (module formula)."""
    rho2 = sequential_rho(alpha, n_star) ** 2
    n = np.asarray(n_total, dtype=float)
    s2 = np.asarray(se, dtype=float) ** 2 * n
    return np.sqrt(
        s2 * 2.0 * (n * rho2 + 1.0) / (n * n * rho2) * np.log(np.sqrt(n * rho2 + 1.0) / alpha)
    )


def p_value(estimate: Any, se: Any, n_total: Any, alpha: float, n_star: float) -> Any:
    """The always-valid two-sided p-value ``min(1, 1/E)`` (module formula)."""
    rho2 = sequential_rho(alpha, n_star) ** 2
    n = np.asarray(n_total, dtype=float)
    st2 = np.asarray(estimate, dtype=float) ** 2 * n / np.asarray(se, dtype=float) ** 2
    log_e = rho2 * st2 / (2.0 * (n * rho2 + 1.0)) - 0.5 * np.log(n * rho2 + 1.0)
    return np.minimum(1.0, np.exp(-log_e))


def halfwidth_one_sided(se: Any, n_total: Any, alpha: float, n_star: float) -> Any:
    """The one-sided confidence-sequence half-width ``halfwidth₁`` (module formula)."""
    rho2 = sequential_rho(alpha, n_star, two_sided=False) ** 2
    n = np.asarray(n_total, dtype=float)
    s2 = np.asarray(se, dtype=float) ** 2 * n
    inner = np.log1p(np.sqrt(n * rho2 + 1.0) / (2.0 * alpha))
    return np.sqrt(s2 * 2.0 * (n * rho2 + 1.0) / (n * n * rho2) * inner)


def p_value_one_sided(
    estimate: Any, se: Any, n_total: Any, alpha: float, n_star: float, *, direction: int
) -> Any:
    """Always-valid one-sided p-value of ``H1: effect < 0`` (``direction=-1``) or ``> 0``
    (``direction=+1``): the closed form ``p₁`` of the module docstring, 1 for an estimate on the
    other side of 0."""
    rho2 = sequential_rho(alpha, n_star, two_sided=False) ** 2
    n = np.asarray(n_total, dtype=float)
    est = np.asarray(estimate, dtype=float)
    a = est * est * n * rho2 / (2.0 * np.asarray(se, dtype=float) ** 2 * (n * rho2 + 1.0))
    with np.errstate(divide="ignore", over="ignore"):
        p = np.minimum(1.0, np.sqrt(n * rho2 + 1.0) / (2.0 * np.expm1(a)))
    return np.where(direction * est > 0, p, 1.0)
