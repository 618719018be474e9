"""Analysing an experiment from one row per user: the metric it is judged on, guardrails, SRM.

The default metric is CTR as the ratio clicks / impressions with users as the unit of
randomisation (delta method, Welch ν). ``click_users`` (the share of exposed users who clicked
at least once) and ``unit="impression"`` (every impression an independent trial; too narrow
intervals when users see several) keep the 2×2-table analysis of
:func:`backend.abtest.analysis.analyze`. The per-user metrics add CUPED (``cuped=True``, with
``pre_*`` columns) and always-valid inference (``sequential=True``). Guardrails are checked for
"no significant harm" with a one-sided test (:mod:`backend.abtest.guardrails`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from backend.abtest import sequential as seq
from backend.abtest.analysis import DEFAULT_MIN_UNITS, analyze, decide, validate_options
from backend.abtest.bayes import BetaPrior
from backend.abtest.counts import Unit, check_unit
from backend.abtest.errors import AbTestInputError
from backend.abtest.guardrails import GuardrailCheck, check_harm
from backend.abtest.metrics import (
    METRICS,
    MetricSpec,
    check_columns,
    compare_metric,
    metric_comparisons,
    metric_spec,
    summarise,
)
from backend.abtest.multiplicity import holm_adjust
from backend.abtest.proportions import Interval
from backend.abtest.results import (
    AnalysisSettings,
    ExperimentAnalysis,
    MetricComparison,
    Status,
    VariantSummary,
)
from backend.abtest.srm import DEFAULT_SRM_ALPHA, srm_check
from backend.abtest.users import counts_from_users
from backend.abtest.verdict import write_verdict
from backend.abtest.welch import Sequential


def _variant_summaries(
    users: pd.DataFrame, ordered: Sequence[str], control: str, alpha: float
) -> tuple[VariantSummary, ...]:
    ctr = METRICS["ctr"]
    out = []
    for v in ordered:
        arm = users[users["variant"] == v]
        summary = summarise(arm, v, v == control, ctr, alpha)
        ci = summary.ci
        out.append(
            VariantSummary(
                variant=v,
                is_control=v == control,
                units=len(arm),
                impressions=int(arm["impressions"].sum()),
                clicks=int(arm["clicks"].sum()),
                ctr=summary.value,
                ctr_ci=Interval(ci.low, ci.high, ci.level, ci.method, ci.reason),
                exposed_users=int((arm["impressions"] > 0).sum()),
                click_users=int((arm["clicks"] > 0).sum()),
            )
        )
    return tuple(out)


def _thin_reasons(
    users: pd.DataFrame, ordered: Sequence[str], spec: MetricSpec, min_units: int
) -> list[str]:
    reasons: list[str] = []
    if len(ordered) < 2:
        reasons.append(f"only one variant ({ordered[0]}); a test needs a control and a treatment")
    for v in ordered:
        arm = users[users["variant"] == v]
        if spec.kind == "ratio" and arm["impressions"].sum() == 0:
            reasons.append(f"variant {v} has no impressions")
        elif len(arm) < min_units:
            reasons.append(f"variant {v} has {len(arm)} units; at least {min_units} are needed")
    if spec.name == "ctr" and users["clicks"].sum() == 0:
        reasons.append("no clicks in any variant")
    return reasons


def _guardrails(
    users: pd.DataFrame,
    ordered: Sequence[str],
    names: Sequence[str],
    *,
    alpha: float,
    margin: float,
    sequential: Sequential | None,
    cuped: bool,
) -> tuple[GuardrailCheck, ...]:
    control = ordered[0]
    checks = []
    for name in names:
        spec = metric_spec(name)
        check_columns(users, spec, pre=False)
        use_cuped = cuped and all(c in users.columns for c in spec.needs(pre=True))
        for treatment in ordered[1:]:
            t = users[users["variant"] == treatment]
            c = users[users["variant"] == control]
            absolute, _, _, _ = compare_metric(
                t,
                c,
                names=(treatment, control),
                spec=spec,
                alpha=alpha,
                sequential=sequential,
                cuped=use_cuped,
            )
            checks.append(
                check_harm(
                    absolute,
                    metric=spec.name,
                    label=spec.label,
                    treatment=treatment,
                    control=control,
                    alpha=alpha,
                    higher_is_better=spec.higher_is_better,
                    margin=margin,
                    sequential=sequential,
                    n_total=len(t) + len(c),
                )
            )
    return tuple(checks)


def analyze_users(
    users: pd.DataFrame,
    *,
    control: str,
    metric: str = "ctr",
    guardrails: Sequence[str] = (),
    guardrail_margin: float = 0.0,
    cuped: bool = False,
    sequential: bool = False,
    n_star: float = seq.DEFAULT_N_STAR,
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
    """Analyse an experiment from a per-user table (``backend.abtest.users``).

    ``metric`` is the one the verdict is about (``backend.abtest.metrics``; default ``ctr``, the
    ratio clicks/impressions by the delta method). ``guardrails`` are metrics checked for
    significant harm at one-sided level α (beyond ``guardrail_margin``, in the metric's units).
    ``cuped`` adjusts with the ``pre_*`` columns; ``sequential`` reports always-valid p-values
    and confidence sequences tuned by ``n_star`` (total users at which one expects to decide).
    ``metric="click_users"`` or ``unit="impression"`` runs the 2×2-table analysis, which takes
    the remaining options (see :func:`backend.abtest.analysis.analyze`).
    """
    unit = check_unit(unit)
    spec = metric_spec(metric)
    for name in guardrails:
        metric_spec(name)
    if not isinstance(cuped, bool) or not isinstance(sequential, bool):
        raise AbTestInputError("cuped and sequential must be true or false")
    if not (isinstance(guardrail_margin, int | float) and guardrail_margin >= 0):
        raise AbTestInputError(f"guardrail_margin must be 0 or more; got {guardrail_margin!r}")
    sequential_spec: Sequential | None = None
    if sequential:
        seq.check_sequential(alpha, n_star, one_sided=bool(guardrails))
        sequential_spec = Sequential(float(n_star))
    proportion_path = metric == "click_users" or unit == "impression"
    if unit == "impression" and metric not in ("ctr", "click_users"):
        raise AbTestInputError("unit=impression applies to the CTR only; use unit=user")
    if proportion_path and (cuped or sequential):
        raise AbTestInputError(
            "CUPED and sequential testing need a per-user metric (ctr, clicks, views, purchases, "
            "value); the share of users who clicked and per-impression CTR use 2×2-table tests"
        )
    check_columns(users, spec, pre=False)
    if cuped:
        check_columns(users, spec, pre=True)
    extra: dict[str, Any] = {
        "metric": "ctr" if unit == "impression" else metric,
        "sequential": sequential,
        "n_star": float(n_star) if sequential else None,
        "cuped": cuped,
        "guardrails": tuple(guardrails),
        "guardrail_margin": float(guardrail_margin),
    }

    if proportion_path:
        base = analyze(
            counts_from_users(users, unit),
            control=control,
            alpha=alpha,
            power=power,
            expected_split=expected_split,
            yates=yates,
            fisher=fisher,
            prior=prior,
            mc_samples=mc_samples,
            seed=seed,
            unit=unit,
            srm_threshold=srm_threshold,
            min_units=min_units,
        )
        ordered = [v.variant for v in base.variants]
        checks = _guardrails(
            users,
            ordered,
            guardrails,
            alpha=alpha,
            margin=guardrail_margin,
            sequential=None,
            cuped=False,
        )
        verdict = write_verdict(
            base.status, base.reasons, base.comparisons, base.srm, alpha, base.metric, checks
        )
        return replace(
            base,
            verdict=verdict,
            guardrails=checks,
            settings=replace(base.settings, **extra),
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
    names = sorted(users["variant"].unique().tolist())
    if not names:
        raise AbTestInputError("no variants given; the per-user table has no rows")
    if control not in names:
        raise AbTestInputError(
            f"control variant {control!r} is not among the variants ({', '.join(names)})"
        )
    ordered = [control] + [v for v in names if v != control]
    metric_variants, raw = metric_comparisons(
        users, ordered, spec, alpha=alpha, sequential=sequential_spec, cuped=cuped
    )
    adjusted = holm_adjust([c.p_value for c in raw])
    comparisons: tuple[MetricComparison, ...] = tuple(
        decide(c, a, alpha) for c, a in zip(raw, adjusted, strict=True)
    )
    srm = srm_check(
        {v: int((users["variant"] == v).sum()) for v in ordered}, expected_split, srm_threshold
    )
    checks = _guardrails(
        users,
        ordered,
        guardrails,
        alpha=alpha,
        margin=guardrail_margin,
        sequential=sequential_spec,
        cuped=cuped,
    )
    reasons = tuple(_thin_reasons(users, ordered, spec, min_units))
    status: Status = "not_enough_data" if reasons else "ok"
    verdict = write_verdict(status, reasons, comparisons, srm, alpha, metric, checks)
    return ExperimentAnalysis(
        status=status,
        reasons=reasons,
        verdict=verdict,
        unit="user",
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
            **extra,
        ),
        variants=_variant_summaries(users, ordered, control, alpha),
        comparisons=comparisons,
        srm=srm,
        metric=metric,
        method=comparisons[0].method if comparisons else spec.method,
        metric_variants=metric_variants,
        guardrails=checks,
    )
