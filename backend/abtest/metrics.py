"""The metrics an experiment can be judged on, and their per-user analysis.

=============  ==========================================  =======================================
name           what                                        test
=============  ==========================================  =======================================
``ctr``        clicks / impressions (a ratio of sums)      delta method, users as the unit
``click_users`` share of exposed users who clicked         2×2-table tests (primary metric), or
               at least once                               Welch on the 0/1 values (guardrail)
``clicks``     clicks per user                             Welch's t-test
``views``      views per user                              Welch's t-test
``purchases``  purchases per user                          Welch's t-test
``value``      value (e.g. revenue) per user               Welch's t-test
=============  ==========================================  =======================================

Every user assigned to a variant counts, exposed or not, except for ``click_users``, whose
denominator is the users with at least one impression. With CUPED the covariate is the same
metric in the pre-period (``pre_clicks`` and ``pre_impressions`` for CTR, ``pre_<name>`` for the
others). All of these metrics are better when higher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy.stats import t as t_dist

from backend.abtest.cuped import CupedArms, cuped_means, cuped_ratios, variance_reduction
from backend.abtest.errors import AbTestInputError
from backend.abtest.proportions import Interval
from backend.abtest.ratio import ratio_arm
from backend.abtest.results import CupedResult, MetricComparison, MetricSummary
from backend.abtest.welch import ArmStat, Effect, Sequential, compare, sample_variance

MetricName = Literal["ctr", "click_users", "clicks", "views", "purchases", "value"]
METRIC_NAMES: tuple[str, ...] = get_args(MetricName)


@dataclass(frozen=True)
class MetricSpec:
    """A metric: ``kind`` ratio (``column`` over ``denominator``) or mean (of ``column``);
    ``label`` names it in verdicts and ``percent`` formats its differences in pp."""

    name: str
    label: str
    kind: Literal["ratio", "mean"]
    column: str
    denominator: str | None = None
    percent: bool = False
    higher_is_better: bool = True
    definition: str = ""

    @property
    def method(self) -> str:
        return "delta method" if self.kind == "ratio" else "Welch t-test"

    def needs(self, pre: bool = False) -> tuple[str, ...]:
        """The per-user columns it reads (``pre_`` ones for CUPED)."""
        columns = (self.column,) if self.denominator is None else (self.column, self.denominator)
        if self.name == "click_users":
            columns = ("clicks", "impressions")
        return tuple("pre_" + c for c in columns) if pre else columns


METRICS: dict[str, MetricSpec] = {
    "ctr": MetricSpec(
        "ctr", "CTR", "ratio", "clicks", "impressions", True, definition="clicks/impressions"
    ),
    "click_users": MetricSpec(
        "click_users", "users who clicked", "mean", "click_users", None, True
    ),
    "clicks": MetricSpec("clicks", "clicks per user", "mean", "clicks"),
    "views": MetricSpec("views", "views per user", "mean", "views"),
    "purchases": MetricSpec("purchases", "purchases per user", "mean", "purchases"),
    "value": MetricSpec("value", "value per user", "mean", "value"),
}


def metric_spec(name: str) -> MetricSpec:
    """The metric called ``name``, or raise naming the known ones."""
    if name not in METRICS:
        raise AbTestInputError(f"metric must be one of {', '.join(METRIC_NAMES)}; got {name!r}")
    return METRICS[name]


def check_columns(users: pd.DataFrame, spec: MetricSpec, *, pre: bool) -> None:
    """Raise when the per-user table lacks a column the metric (or its CUPED covariate) reads."""
    missing = [c for c in spec.needs(pre) if c not in users.columns]
    if missing:
        what = "CUPED on " + spec.name if pre else "metric " + spec.name
        raise AbTestInputError(
            f"{what} needs the per-user column(s) {', '.join(missing)}, which the data lacks"
        )


def _values(arm: pd.DataFrame, spec: MetricSpec, prefix: str = "") -> np.ndarray:
    if spec.name == "click_users":
        exposed = arm[arm[prefix + "impressions"] > 0]
        return (exposed[prefix + "clicks"] > 0).to_numpy(np.float64)
    return arm[prefix + spec.column].to_numpy(np.float64)


def _pair(arm: pd.DataFrame, spec: MetricSpec, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    assert spec.denominator is not None
    return (
        arm[prefix + spec.column].to_numpy(np.float64),
        arm[prefix + spec.denominator].to_numpy(np.float64),
    )


def arm_stat(arm: pd.DataFrame, spec: MetricSpec) -> ArmStat:
    """The unadjusted statistic of one arm: the ratio and its delta variance, or the mean."""
    if spec.kind == "ratio":
        return ratio_arm(*_pair(arm, spec))
    y = _values(arm, spec)
    return ArmStat(len(y), float(y.mean()) if len(y) else None, sample_variance(y))


def _pre_value(arm: pd.DataFrame, spec: MetricSpec) -> float | None:
    if spec.kind == "ratio":
        m, d = _pair(arm, spec, "pre_")
        return float(m.sum() / d.sum()) if d.sum() else None
    y = _values(arm, spec, "pre_")
    return float(y.mean()) if len(y) else None


def _cuped(treatment: pd.DataFrame, control: pd.DataFrame, spec: MetricSpec) -> CupedArms:
    if spec.kind == "ratio":
        return cuped_ratios(
            _pair(treatment, spec),
            _pair(treatment, spec, "pre_"),
            _pair(control, spec),
            _pair(control, spec, "pre_"),
        )
    if spec.name == "click_users":
        # Pre-period values of the users exposed in the experiment.
        t = treatment[treatment["impressions"] > 0]
        c = control[control["impressions"] > 0]
        pre = lambda a: (a["pre_clicks"] > 0).to_numpy(np.float64)  # noqa: E731
        return cuped_means(_values(t, spec), pre(t), _values(c, spec), pre(c))
    return cuped_means(
        _values(treatment, spec),
        _values(treatment, spec, "pre_"),
        _values(control, spec),
        _values(control, spec, "pre_"),
    )


def summarise(
    arm: pd.DataFrame,
    variant: str,
    is_control: bool,
    spec: MetricSpec,
    alpha: float,
    adjusted: ArmStat | None = None,
    cuped: bool = False,
) -> MetricSummary:
    """The metric of one variant with its ``R ± t_{n-1}·σ/√n`` interval."""
    stat = arm_stat(arm, spec)
    level = 1.0 - alpha
    method = "delta" if spec.kind == "ratio" else "t"
    if stat.mean is None or stat.n < 2:
        ci = Interval.undefined(level, method, "fewer than 2 users or no denominator")
    else:
        half = float(t_dist.isf(alpha / 2.0, stat.n - 1)) * np.sqrt(stat.variance / stat.n)
        ci = Interval(stat.mean - half, stat.mean + half, level, method)
    return MetricSummary(
        variant=variant,
        is_control=is_control,
        units=stat.n,
        value=stat.mean,
        ci=ci,
        sd=float(np.sqrt(stat.variance)) if stat.n >= 2 else None,
        pre_value=_pre_value(arm, spec) if cuped else None,
        adjusted_value=None if adjusted is None else adjusted.mean,
    )


def compare_metric(
    treatment: pd.DataFrame,
    control: pd.DataFrame,
    *,
    names: tuple[str, str],
    spec: MetricSpec,
    alpha: float,
    sequential: Sequential | None,
    cuped: bool,
) -> tuple[Effect, Effect, CupedArms | None, CupedResult | None]:
    """Absolute and relative effect of the treatment on the metric (CUPED-adjusted when
    ``cuped``), the adjusted arms and what CUPED did."""
    plain = compare(
        arm_stat(treatment, spec),
        arm_stat(control, spec),
        names=names,
        alpha=alpha,
        sequential=sequential,
    )
    if not cuped:
        return plain[0], plain[1], None, None
    arms = _cuped(treatment, control, spec)
    absolute, relative = compare(
        arms.treatment,
        arms.control,
        names=names,
        alpha=alpha,
        sequential=sequential,
        relative_variance=arms.relative_variance,
        baseline=arms.baseline,
    )
    reduction = variance_reduction(
        None if absolute.se is None else absolute.se**2,
        None if plain[0].se is None else plain[0].se ** 2,
    )
    reduction_rel = variance_reduction(
        None if relative.se is None else relative.se**2,
        None if plain[1].se is None else plain[1].se ** 2,
    )
    reason = "no pre-period variation, so no adjustment" if arms.theta == 0 else None
    covariate = ", ".join(spec.needs(pre=True))
    result = CupedResult(covariate, arms.theta, reduction, reduction_rel, plain[0], reason)
    return absolute, relative, arms, result


def metric_comparisons(
    users: pd.DataFrame,
    ordered: Sequence[str],
    spec: MetricSpec,
    *,
    alpha: float,
    sequential: Sequential | None,
    cuped: bool,
) -> tuple[tuple[MetricSummary, ...], list[MetricComparison]]:
    """The metric per variant (control first in ``ordered``) and every treatment against the
    control, before the Holm adjustment and the decision."""
    arms = {v: users[users["variant"] == v] for v in ordered}
    control = ordered[0]
    method = spec.method + (", CUPED" if cuped else "") + (", sequential" if sequential else "")
    if spec.definition:
        method = f"{spec.definition}, {method}"
    comparisons: list[MetricComparison] = []
    adjusted: dict[str, ArmStat] = {}
    for treatment in ordered[1:]:
        absolute, relative, cuped_arms, cuped_result = compare_metric(
            arms[treatment],
            arms[control],
            names=(treatment, control),
            spec=spec,
            alpha=alpha,
            sequential=sequential,
            cuped=cuped,
        )
        if cuped_arms is not None:
            adjusted[treatment] = cuped_arms.treatment
            if len(ordered) == 2:  # θ is fitted per pair: the control has one adjusted value
                adjusted[control] = cuped_arms.control
        comparisons.append(
            MetricComparison(
                treatment=treatment,
                control=control,
                metric=spec.name,
                method=method,
                difference=absolute,
                relative_lift=relative,
                p_value=absolute.p_value,
                p_value_adjusted=None,
                significant=None,
                decision="undetermined",
                cuped=cuped_result,
            )
        )
    summaries = tuple(
        summarise(arms[v], v, v == control, spec, alpha, adjusted.get(v), cuped) for v in ordered
    )
    return summaries, comparisons
