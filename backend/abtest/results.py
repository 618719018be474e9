"""What :func:`backend.abtest.analysis.analyze` returns, shaped as the JSON it is stored as.

Each field is a key of the stored and answered analysis, and a nested dataclass is a nested
object, so ``backend.jsonable.to_jsonable(analysis)`` is the whole conversion: tuples become
lists, and an undefined figure (NaN, infinity) becomes ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from backend.abtest.bayes import BayesResult, BetaPrior
from backend.abtest.counts import Unit
from backend.abtest.guardrails import GuardrailCheck
from backend.abtest.power import PowerResult
from backend.abtest.proportions import Interval, RelativeLift
from backend.abtest.significance import ChiSquareResult, TestResult
from backend.abtest.srm import SrmResult
from backend.abtest.welch import Effect

Status = Literal["ok", "not_enough_data"]
Decision = Literal[
    "treatment_better", "treatment_worse", "no_significant_difference", "undetermined"
]


@dataclass(frozen=True)
class VariantSummary:
    """Counts and CTR of one variant, with the Wilson interval of the CTR at ``1 - α``."""

    variant: str
    is_control: bool
    units: int
    impressions: int
    clicks: int
    ctr: float | None
    ctr_ci: Interval
    #: From per-user data only: users with at least one impression, and with at least one click.
    exposed_users: int | None = None
    click_users: int | None = None


@dataclass(frozen=True)
class Difference:
    """Treatment minus control CTR with its Newcombe interval; ``estimate`` is ``None`` when a
    variant has no impressions."""

    estimate: float | None
    ci: Interval


@dataclass(frozen=True)
class HypothesisTests:
    """Every test run on the 2×2 table: Fisher's only when it decides or was asked for."""

    z: TestResult
    chi_square: ChiSquareResult
    fisher: TestResult | None


@dataclass(frozen=True)
class Comparison:
    """One treatment against the control (differences are treatment minus control).

    ``primary_test`` decides: Fisher's exact test when any expected cell count is below 5,
    else the chi-square test with Yates' correction when ``yates`` was asked for, else the
    z-test. ``p_value_adjusted`` is Holm-adjusted over all comparisons of the experiment (equal
    to ``p_value`` with one treatment) and ``significant`` means ``p_value_adjusted <= α``.
    """

    treatment: str
    control: str
    difference: Difference
    relative_lift: RelativeLift
    tests: HypothesisTests
    min_expected_count: float
    primary_test: str
    p_value: float | None
    p_value_adjusted: float | None
    significant: bool | None
    decision: Decision
    power: PowerResult
    bayes: BayesResult


@dataclass(frozen=True)
class AnalysisSettings:
    """The options an analysis ran with (see :func:`backend.abtest.analysis.analyze`)."""

    alpha: float
    power: float
    yates: bool
    prior: BetaPrior
    mc_samples: int
    seed: int | None
    min_units: int
    srm_threshold: float
    metric: str = "click_users"
    sequential: bool = False
    n_star: float | None = None
    cuped: bool = False
    guardrails: tuple[str, ...] = ()
    guardrail_margin: float = 0.0


@dataclass(frozen=True)
class MetricSummary:
    """One variant's value of the analysed per-user metric: ``value`` (a ratio or a mean per
    user) with its ``1 - α`` interval (``R ± t·σ/√n``), the per-user ``sd``, and with CUPED the
    pre-period value and the adjusted value."""

    variant: str
    is_control: bool
    units: int
    value: float | None
    ci: Interval
    sd: float | None
    pre_value: float | None = None
    adjusted_value: float | None = None


@dataclass(frozen=True)
class CupedResult:
    """What CUPED did: θ, the covariate, the variance reduction of the absolute effect
    (``1 - V_adj/V_unadj``) and of the relative one, and the unadjusted difference."""

    covariate: str
    theta: float
    variance_reduction: float | None
    variance_reduction_relative: float | None
    unadjusted: Effect
    reason: str | None = None


@dataclass(frozen=True)
class MetricComparison:
    """One treatment against the control on a per-user metric (ratio or mean).

    ``difference`` is the absolute effect and ``relative_lift`` the relative one, each with its
    standard error, Welch ν, p-value and interval (a confidence sequence when sequential);
    ``p_value`` is the absolute effect's, ``p_value_adjusted`` Holm's over the treatments."""

    treatment: str
    control: str
    metric: str
    method: str
    difference: Effect
    relative_lift: Effect
    p_value: float | None
    p_value_adjusted: float | None
    significant: bool | None
    decision: Decision
    cuped: CupedResult | None = None


@dataclass(frozen=True)
class ExperimentAnalysis:
    """Everything an analysis found, with the settings it used. ``variants`` lists the control
    first, then the treatments in input order; ``comparisons`` follows that order and is about
    ``metric``: :class:`Comparison` (2×2-table tests) for a share of users or of impressions,
    :class:`MetricComparison` for a per-user metric. ``metric_variants`` holds that metric per
    variant, ``guardrails`` the harm checks."""

    status: Status
    reasons: tuple[str, ...]
    verdict: str
    unit: Unit
    control: str
    settings: AnalysisSettings
    variants: tuple[VariantSummary, ...]
    comparisons: tuple[Comparison, ...] | tuple[MetricComparison, ...]
    srm: SrmResult
    #: The metric the verdict is about and how it was tested (see ``backend.abtest.metrics``).
    metric: str = "click_users"
    method: str = "two-proportion tests"
    metric_variants: tuple[MetricSummary, ...] = ()
    guardrails: tuple[GuardrailCheck, ...] = ()
