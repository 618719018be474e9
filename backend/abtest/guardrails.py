"""Guardrail metrics: "no significant harm", a one-sided test on the absolute difference.

For a metric where higher is better, harm is a treatment below the control. With
``Δ = treatment - control``, its standard error ``se``, Welch ν, and a non-inferiority
``margin ≥ 0`` (0 by default: any significant drop is harm, as in GrowthBook's Safe Rollouts)::

    H0: Δ ≥ -margin  vs  H1: Δ < -margin
    p_harm = F_t((Δ + margin)/se; ν)
    bound  = Δ + F_t⁻¹(1 - α; ν)·se          (the upper bound the harm test uses)
    harmed = bound < -margin  ⇔  p_harm < α
    worst  = Δ - F_t⁻¹(1 - α; ν)·se          (the worst plausible change, reported)

For a lower-is-better metric the signs flip (bound is a lower bound, harm when it exceeds
``margin``). Sequentially, the bound is ``Δ ± halfwidth₁`` and ``p_harm`` the one-sided
always-valid p-value of :mod:`backend.abtest.sequential`. "No significant harm" is not proof of
safety: it may only mean too few users to see the harm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scipy.stats import t as t_dist

from backend.abtest import sequential as seq
from backend.abtest.welch import Effect, Sequential


@dataclass(frozen=True)
class GuardrailCheck:
    """The harm check of one guardrail metric for one treatment against the control.

    ``bound`` is the one-sided ``1 - α`` bound the harm test compares with ``-margin`` (the upper
    bound of Δ for a higher-is-better metric, the lower bound otherwise); ``worst`` is the worst
    plausible change, the bound on the other side; ``harmed`` is None when the difference could
    not be tested (``reason`` says why)."""

    metric: str
    label: str
    treatment: str
    control: str
    higher_is_better: bool
    estimate: float | None
    bound: float | None
    worst: float | None
    p_harm: float | None
    harmed: bool | None
    method: str
    margin: float
    reason: str | None = None


def check_harm(
    effect: Effect,
    *,
    metric: str,
    label: str,
    treatment: str,
    control: str,
    alpha: float,
    higher_is_better: bool = True,
    margin: float = 0.0,
    sequential: Sequential | None = None,
    n_total: int = 0,
) -> GuardrailCheck:
    """One-sided harm test of an absolute ``effect`` (module formulas)."""
    method = "welch_t_one_sided" if sequential is None else "sequential_cs_one_sided"

    def result(**figures: Any) -> GuardrailCheck:
        return GuardrailCheck(
            metric=metric,
            label=label,
            treatment=treatment,
            control=control,
            higher_is_better=higher_is_better,
            method=method,
            margin=margin,
            **figures,
        )

    if effect.estimate is None or effect.se is None or effect.dof is None:
        return result(
            estimate=None,
            bound=None,
            worst=None,
            p_harm=None,
            harmed=None,
            reason=effect.reason or "the difference is undefined",
        )
    # Work on the "harm is negative" scale: s = +1 when higher is better, else -1.
    s = 1.0 if higher_is_better else -1.0
    shifted = s * effect.estimate + margin
    if sequential is None:
        p_harm = float(t_dist.cdf(shifted / effect.se, effect.dof))
        half = float(t_dist.isf(alpha, effect.dof)) * effect.se
    else:
        p_harm = float(
            seq.p_value_one_sided(
                shifted, effect.se, n_total, alpha, sequential.n_star, direction=-1
            )
        )
        half = float(seq.halfwidth_one_sided(effect.se, n_total, alpha, sequential.n_star))
    bound = effect.estimate + s * half
    return result(
        estimate=effect.estimate,
        bound=bound,
        worst=effect.estimate - s * half,
        p_harm=p_harm,
        harmed=s * bound < -margin,
    )
