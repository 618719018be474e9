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
from backend.abtest.power import PowerResult
from backend.abtest.proportions import Interval, RelativeLift
from backend.abtest.significance import ChiSquareResult, TestResult
from backend.abtest.srm import SrmResult

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


@dataclass(frozen=True)
class ExperimentAnalysis:
    """Everything :func:`backend.abtest.analysis.analyze` found, with the settings it used.
    ``variants`` lists the control first, then the treatments in input order; ``comparisons``
    follows that order."""

    status: Status
    reasons: tuple[str, ...]
    verdict: str
    unit: Unit
    control: str
    settings: AnalysisSettings
    variants: tuple[VariantSummary, ...]
    comparisons: tuple[Comparison, ...]
    srm: SrmResult
