"""One call that analyses an experiment: per-variant CTRs, every treatment against the control,
sample ratio mismatch, and a verdict in plain words.

Structural errors in the input (no control, duplicate or negative counts, clicks above
impressions, a bad split) raise :class:`AbTestInputError`. Data that is valid but too thin to
judge (one variant, a variant with no units or impressions, no clicks at all, fewer than
``min_units`` units) returns ``status = "not_enough_data"`` with the reasons, and every statistic
that is still defined.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

import numpy as np

from backend.abtest.bayes import BetaPrior, bayes_compare
from backend.abtest.counts import Unit, VariantCounts, check_unit, check_variant_set
from backend.abtest.errors import AbTestInputError
from backend.abtest.multiplicity import holm_adjust
from backend.abtest.power import check_power, power_analysis
from backend.abtest.proportions import (
    difference,
    newcombe_interval,
    relative_lift,
    wilson_interval,
    z_critical,
)
from backend.abtest.results import (
    AnalysisSettings,
    Comparison,
    Decision,
    Difference,
    ExperimentAnalysis,
    HypothesisTests,
    MetricComparison,
    Status,
    VariantSummary,
)
from backend.abtest.significance import (
    TestResult,
    chi_square_test,
    fisher_exact_test,
    min_expected_count,
    needs_exact_test,
    two_proportion_ztest,
)
from backend.abtest.srm import DEFAULT_SRM_ALPHA, srm_check
from backend.abtest.verdict import write_verdict

_C = TypeVar("_C", Comparison, MetricComparison)

#: Fewer units than this in a variant makes the analysis "not_enough_data" by default.
DEFAULT_MIN_UNITS = 30


def _thin_data_reasons(ordered: Sequence[VariantCounts], min_units: int, unit: Unit) -> list[str]:
    reasons: list[str] = []
    if len(ordered) < 2:
        reasons.append(
            f"only one variant ({ordered[0].variant}); a test needs a control and a treatment"
        )
    trials = "exposed users" if unit == "user" else "impressions"
    for v in ordered:
        if v.units == 0:
            reasons.append(f"variant {v.variant} has no units")
        elif v.impressions == 0:
            reasons.append(f"variant {v.variant} has no {trials}")
        elif v.units < min_units:
            reasons.append(
                f"variant {v.variant} has {v.units} units; at least {min_units} are needed"
            )
    if sum(v.clicks for v in ordered) == 0:
        reasons.append("no clicks in any variant")
    return reasons


def _compare(
    treatment: VariantCounts,
    control: VariantCounts,
    *,
    alpha: float,
    power: float,
    yates: bool,
    fisher: bool,
    prior: BetaPrior,
    mc_samples: int,
    rng: np.random.Generator,
    seed: int | None,
) -> Comparison:
    # Everything but the Holm adjustment, which needs all comparisons; see analyze().
    counts = (treatment.clicks, treatment.impressions, control.clicks, control.impressions)
    z_test = two_proportion_ztest(*counts)
    chi_square = chi_square_test(*counts, yates=yates)
    exact = needs_exact_test(*counts) and treatment.impressions > 0 and control.impressions > 0
    fisher_result = fisher_exact_test(*counts) if fisher or exact else None
    primary: TestResult
    if fisher_result is not None and exact:
        primary = fisher_result
    elif yates:
        primary = chi_square
    else:
        primary = z_test
    return Comparison(
        treatment=treatment.variant,
        control=control.variant,
        difference=Difference(difference(*counts), newcombe_interval(*counts, alpha=alpha)),
        relative_lift=relative_lift(*counts, alpha=alpha),
        tests=HypothesisTests(z=z_test, chi_square=chi_square, fisher=fisher_result),
        min_expected_count=min_expected_count(*counts),
        primary_test=primary.test,
        p_value=primary.p_value,
        p_value_adjusted=None,
        significant=None,
        decision="undetermined",
        power=power_analysis(*counts, alpha=alpha, power=power),
        bayes=bayes_compare(*counts, prior, mc_samples=mc_samples, rng=rng, seed=seed),
    )


def decide(comparison: _C, adjusted: float | None, alpha: float) -> _C:
    """The comparison with its Holm-adjusted p-value, significance (``p̃ <= α``) and decision."""
    estimate = comparison.difference.estimate
    if adjusted is None or estimate is None:
        significant: bool | None = None
        decision: Decision = "undetermined"
    else:
        significant = adjusted <= alpha
        if not significant:
            decision = "no_significant_difference"
        else:
            decision = "treatment_better" if estimate > 0 else "treatment_worse"
    return replace(
        comparison, p_value_adjusted=adjusted, significant=significant, decision=decision
    )


def validate_options(
    *,
    alpha: float,
    power: float,
    yates: bool,
    fisher: bool,
    min_units: int,
    mc_samples: int,
    seed: int | None,
    prior: tuple[float, float] | BetaPrior,
) -> BetaPrior:
    """Raise :class:`AbTestInputError` for an option out of range; the Beta prior."""
    z_critical(alpha)  # raises for an alpha outside (0, 1)
    check_power(power, alpha)
    if not isinstance(yates, bool) or not isinstance(fisher, bool):
        raise AbTestInputError("yates and fisher must be true or false")
    if isinstance(min_units, bool) or not isinstance(min_units, int) or min_units < 1:
        raise AbTestInputError(f"min_units must be a positive integer; got {min_units!r}")
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or mc_samples < 0:
        raise AbTestInputError(f"mc_samples must be 0 or a positive integer; got {mc_samples!r}")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0
    ):
        raise AbTestInputError(f"seed must be a non-negative integer or None; got {seed!r}")
    return prior if isinstance(prior, BetaPrior) else BetaPrior(*prior)


def analyze(
    counts: Sequence[VariantCounts],
    *,
    control: str,
    alpha: float = 0.05,
    power: float = 0.8,
    expected_split: Mapping[str, float] | None = None,
    yates: bool = False,
    fisher: bool = False,
    prior: tuple[float, float] | BetaPrior = (1.0, 1.0),
    mc_samples: int = 0,
    seed: int | None = None,
    unit: Unit = "user",
    srm_threshold: float = DEFAULT_SRM_ALPHA,
    min_units: int = DEFAULT_MIN_UNITS,
) -> ExperimentAnalysis:
    """Analyse an A/B(/n) test on a share: of exposed users who clicked (``unit="user"``,
    metric ``click_users``) or of impressions clicked (``unit="impression"``).

    For CTR as clicks / impressions with users as the unit, use
    :func:`backend.abtest.experiment.analyze_users` on one row per user.

    ``counts`` holds one :class:`VariantCounts` per variant, in the unit of analysis ``unit``
    (``"user"`` by default; see :mod:`backend.abtest.counts` for why per-impression analysis
    inflates significance). ``control`` names the baseline; every other variant is a treatment
    compared with it, and with several treatments the p-values are Holm-adjusted.

    Options: ``alpha`` for every interval and test; ``power`` the target for the minimum
    detectable effect; ``expected_split`` the configured traffic weights for the SRM check
    (equal when None) and ``srm_threshold`` its p-value cut-off; ``yates`` makes the chi-square
    test with continuity correction decide; ``fisher`` reports Fisher's exact test even where it
    is not needed (it always decides when an expected cell count is below 5); ``prior`` is the
    Beta prior ``(a, b)``; ``mc_samples > 0`` adds a Monte Carlo estimate of the Bayesian
    figures, drawn from ``numpy.random.default_rng(seed)``; ``min_units`` is the fewest units per
    variant for status ``"ok"``.
    """
    unit = check_unit(unit)
    variants = list(counts)
    check_variant_set(variants, unit)
    names = [v.variant for v in variants]
    if control not in names:
        raise AbTestInputError(
            f"control variant {control!r} is not among the variants ({', '.join(names)})"
        )
    beta_prior = validate_options(
        alpha=alpha,
        power=power,
        yates=yates,
        fisher=fisher,
        min_units=min_units,
        mc_samples=mc_samples,
        seed=seed,
        prior=prior,
    )
    seed = None if seed is None else int(seed)  # a numpy integer would not survive json.dumps

    control_counts = next(v for v in variants if v.variant == control)
    ordered = [control_counts] + [v for v in variants if v.variant != control]
    summaries = tuple(
        VariantSummary(
            variant=v.variant,
            is_control=v.variant == control,
            units=v.units,
            impressions=v.impressions,
            clicks=v.clicks,
            ctr=v.ctr,
            ctr_ci=wilson_interval(v.clicks, v.impressions, alpha),
        )
        for v in ordered
    )
    srm = srm_check({v.variant: v.units for v in ordered}, expected_split, srm_threshold)

    rng = np.random.default_rng(seed)
    raw = [
        _compare(
            t,
            control_counts,
            alpha=alpha,
            power=power,
            yates=yates,
            fisher=fisher,
            prior=beta_prior,
            mc_samples=mc_samples,
            rng=rng,
            seed=seed,
        )
        for t in ordered[1:]
    ]
    adjusted = holm_adjust([c.p_value for c in raw])
    comparisons = tuple(decide(c, a, alpha) for c, a in zip(raw, adjusted, strict=True))

    reasons = tuple(_thin_data_reasons(ordered, min_units, unit))
    status: Status = "not_enough_data" if reasons else "ok"
    metric = "click_users" if unit == "user" else "ctr"
    verdict = write_verdict(status, reasons, comparisons, srm, alpha, metric)
    return ExperimentAnalysis(
        status=status,
        reasons=reasons,
        verdict=verdict,
        unit=unit,
        control=control,
        settings=AnalysisSettings(
            alpha=alpha,
            power=power,
            yates=yates,
            prior=beta_prior,
            mc_samples=mc_samples,
            seed=seed,
            min_units=min_units,
            srm_threshold=srm.threshold,
            metric=metric,
        ),
        variants=summaries,
        comparisons=comparisons,
        srm=srm,
        metric=metric,
        method="two-proportion tests" + (" per impression" if unit == "impression" else ""),
    )
