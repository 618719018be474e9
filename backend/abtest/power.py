"""Power, minimum detectable effect and sample size for comparing two CTRs.

One formula serves all three: the normal approximation on Cohen's effect size for proportions
(the arcsine transform), which is what statsmodels' ``NormalIndPower`` computes::

    h     = 2·asin(sqrt(p_t)) - 2·asin(sqrt(p_c))           (Cohen's h)
    n_eff = n_c · n_t / (n_c + n_t)                         (= n/2 for two groups of n)
    power = Φ(|h|·sqrt(n_eff) - z_{1-α/2}) + Φ(-|h|·sqrt(n_eff) - z_{1-α/2})

Power is two-sided and keeps the (tiny) far tail, as statsmodels does. Because the arcsine
transform stabilises the variance of a proportion, this needs no choice between pooled and
unpooled variances, and it agrees closely with the power of the pooled z-test in
:mod:`backend.abtest.significance` for all but very small samples.

Power depends on the data only through ``s = |h|·sqrt(n_eff)``, so the MDE and the sample size
both come from one root ``s*`` of ``power(s) = target``, solved to machine precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.optimize import brentq
from scipy.stats import norm

from backend.abtest.errors import AbTestInputError
from backend.abtest.proportions import z_critical


def cohens_h(p_t: float, p_c: float) -> float:
    """Cohen's h, ``2·asin(sqrt(p_t)) - 2·asin(sqrt(p_c))``; positive when ``p_t > p_c``."""
    return 2.0 * math.asin(math.sqrt(p_t)) - 2.0 * math.asin(math.sqrt(p_c))


def effective_n(n_c: float, n_t: float) -> float:
    """``n_c · n_t / (n_c + n_t)``, the sample size that scales ``h`` (0 if either is 0)."""
    return n_c * n_t / (n_c + n_t) if n_c > 0 and n_t > 0 else 0.0


def power_of_scaled_effect(s: float, alpha: float) -> float:
    """Two-sided power for the scaled effect ``s = |h|·sqrt(n_eff)``: see the module formula."""
    z = z_critical(alpha)
    s = abs(s)
    return float(norm.sf(z - s) + norm.cdf(-z - s))


def check_power(power: float, alpha: float) -> None:
    """Raise unless ``alpha < power < 1`` (a test has power α against no effect at all)."""
    if not alpha < power < 1.0:
        raise AbTestInputError(
            f"target power must lie between alpha ({alpha}) and 1 (exclusive); got {power!r}"
        )


def required_scaled_effect(alpha: float, power: float) -> float:
    """The root ``s*`` of ``power_of_scaled_effect(s, alpha) = power``.

    Bracketed in ``[0, z_{1-α/2} + z_{power}]``: power at 0 is α, and at the right end it is
    ``power`` plus the far tail, so the root is a hair below the textbook ``z_{1-α/2} + z_β``.
    """
    check_power(power, alpha)
    upper = z_critical(alpha) + float(norm.ppf(power))
    return float(
        brentq(
            lambda s: power_of_scaled_effect(s, alpha) - power,
            0.0,
            upper,
            xtol=1e-15,
            rtol=4 * 2.220446049250313e-16,
        )
    )


def achieved_power(
    clicks_t: int, n_t: int, clicks_c: int, n_c: int, alpha: float = 0.05
) -> float | None:
    """Power of the two-sided test at α if the true CTRs were the observed ones.

    ``power_of_scaled_effect(h·sqrt(n_eff))`` with ``h = cohens_h(p̂_t, p̂_c)``; equals
    ``NormalIndPower().power(h, nobs1=n_c, alpha=alpha, ratio=n_t/n_c)``. ``None`` when a variant
    has no impressions. Note that this "observed power" is a function of the p-value: it
    describes the sample, and says nothing new about whether the effect is real.
    """
    if n_t == 0 or n_c == 0:
        return None
    h = cohens_h(clicks_t / n_t, clicks_c / n_c)
    return power_of_scaled_effect(h * math.sqrt(effective_n(n_c, n_t)), alpha)


@dataclass(frozen=True)
class PowerResult:
    """Achieved power and the minimum detectable effect of one comparison."""

    achieved: float | None
    target_power: float
    mde_abs: float | None
    reason: str | None = None


def minimum_detectable_effect(
    p_c: float, n_t: int, n_c: int, alpha: float = 0.05, power: float = 0.8
) -> tuple[float | None, str | None]:
    """Smallest *increase* in CTR, ``p_t - p_c``, detected with ``power`` at α for these sizes.

    ``h* = s* / sqrt(n_eff)`` (see :func:`required_scaled_effect`), then
    ``p_t = sin²(asin(sqrt(p_c)) + h*/2)`` and the MDE is ``p_t - p_c`` (absolute, in CTR units).
    Returns ``(None, reason)`` when a variant has no impressions or when even a CTR of 100%
    would be detected with less than ``power``.
    """
    if n_t == 0 or n_c == 0:
        return None, "a variant has no impressions"
    if not 0.0 <= p_c <= 1.0:
        raise AbTestInputError(f"control CTR must lie in [0, 1]; got {p_c!r}")
    if p_c == 1.0:
        return None, "the control CTR is already 100%, so no increase is possible"
    h_star = required_scaled_effect(alpha, power) / math.sqrt(effective_n(n_c, n_t))
    angle = math.asin(math.sqrt(p_c)) + h_star / 2.0
    if angle > math.pi / 2.0:
        return None, "too few impressions: no CTR up to 100% would reach the target power"
    return math.sin(angle) ** 2 - p_c, None


def power_analysis(
    clicks_t: int, n_t: int, clicks_c: int, n_c: int, alpha: float = 0.05, power: float = 0.8
) -> PowerResult:
    """:func:`achieved_power` and :func:`minimum_detectable_effect` at the observed control CTR."""
    check_power(power, alpha)
    achieved = achieved_power(clicks_t, n_t, clicks_c, n_c, alpha)
    if n_c == 0:
        return PowerResult(achieved, power, None, "the control has no impressions")
    mde, reason = minimum_detectable_effect(clicks_c / n_c, n_t, n_c, alpha, power)
    return PowerResult(achieved, power, mde, reason)


PLAN_METHOD = "two-sided normal approximation on Cohen's h; Bonferroni over treatments"


def _ceil_units(exact: float) -> int:
    # A solution like 1000.0000000002 is 1000 up to rounding, not 1001.
    return math.ceil(exact - 1e-9)


@dataclass(frozen=True)
class SampleSizePlan:
    """Units needed per variant to detect ``baseline_ctr → target_ctr`` with ``power`` at α.

    ``units_control`` and ``units_per_treatment`` are rounded up; ``units_control_exact`` is the
    unrounded solution. "Units" are in the unit of analysis: exposed users per user, or
    impressions per impression.
    """

    baseline_ctr: float
    target_ctr: float
    mde_abs: float
    mde_rel: float
    effect_size_h: float
    alpha: float
    alpha_per_comparison: float
    power: float
    ratio: float
    n_variants: int
    units_control_exact: float
    units_control: int
    units_per_treatment: int
    units_total: int
    method: str = PLAN_METHOD


def plan_sample_size(
    baseline_ctr: float,
    *,
    mde_abs: float | None = None,
    mde_rel: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    n_variants: int = 2,
) -> SampleSizePlan:
    """Units per variant for a two-sided test to detect a given effect.

    Give exactly one of ``mde_abs`` (target CTR = baseline + mde_abs) or ``mde_rel`` (target CTR
    = baseline · (1 + mde_rel)); either may be negative, to detect a drop. ``ratio`` is
    treatment units per control unit (as ``ratio`` in statsmodels' ``NormalIndPower``).

    Solves the module formula for the control size::

        n_c = (s* / |h|)² · (1 + ratio) / ratio,    n_t = ratio · n_c

    which equals ``NormalIndPower().solve_power(h, alpha=α', power=power, ratio=ratio)``. With
    more than two variants every treatment is compared with the control, and the plan uses the
    Bonferroni level ``α' = α / (n_variants - 1)``: that is the level at which the Holm procedure
    of :func:`backend.abtest.analysis.analyze` tests the smallest p-value, so each comparison
    keeps at least the target power. Total = control + (n_variants - 1) treatments.
    """
    if not 0.0 < baseline_ctr < 1.0:
        raise AbTestInputError(
            f"baseline_ctr must lie strictly between 0 and 1; got {baseline_ctr!r}"
        )
    if (mde_abs is None) == (mde_rel is None):
        raise AbTestInputError("give exactly one of mde_abs (in CTR) or mde_rel (a fraction)")
    if mde_abs is not None:
        target = baseline_ctr + mde_abs
    else:
        assert mde_rel is not None
        target = baseline_ctr * (1.0 + mde_rel)
    if not 0.0 <= target <= 1.0 or not math.isfinite(target):
        raise AbTestInputError(
            f"the target CTR {target!r} (baseline {baseline_ctr} plus the effect) must lie in "
            "[0, 1]; use a smaller effect"
        )
    if target == baseline_ctr:
        raise AbTestInputError("the minimum detectable effect must not be zero")
    if isinstance(n_variants, bool) or not isinstance(n_variants, int) or n_variants < 2:
        raise AbTestInputError(f"n_variants must be an integer of at least 2; got {n_variants!r}")
    if not (math.isfinite(ratio) and ratio > 0):
        raise AbTestInputError(f"ratio (treatment/control units) must be positive; got {ratio!r}")
    z_critical(alpha)  # raises for an alpha outside (0, 1)
    alpha_each = alpha / (n_variants - 1)
    h = cohens_h(target, baseline_ctr)
    s_star = required_scaled_effect(alpha_each, power)
    n_c = (s_star / abs(h)) ** 2 * (1.0 + ratio) / ratio
    units_c = _ceil_units(n_c)
    units_t = _ceil_units(ratio * n_c)
    return SampleSizePlan(
        baseline_ctr=baseline_ctr,
        target_ctr=target,
        mde_abs=target - baseline_ctr,
        mde_rel=target / baseline_ctr - 1.0,
        effect_size_h=h,
        alpha=alpha,
        alpha_per_comparison=alpha_each,
        power=power,
        ratio=ratio,
        n_variants=n_variants,
        units_control_exact=n_c,
        units_control=units_c,
        units_per_treatment=units_t,
        units_total=units_c + (n_variants - 1) * units_t,
    )
