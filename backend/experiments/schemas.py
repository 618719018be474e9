"""Experiments, their stored analyses and the sample-size planner at the API boundary."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class SampleSizeOut(BaseModel):
    """Units per variant to detect the lift (``backend.abtest.power.SampleSizePlan``)."""

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
    method: str


class LatestVerdictOut(BaseModel):
    id: int
    created_at: datetime
    status: str
    verdict: str


class ExperimentSummaryOut(BaseModel):
    experiment: str
    in_lake: bool = Field(description="the lake holds events of this experiment")
    analyses: int = Field(description="stored analyses")
    latest: LatestVerdictOut | None


class ExperimentListOut(BaseModel):
    items: list[ExperimentSummaryOut]


class AnalysisBriefOut(BaseModel):
    id: int
    job_id: int | None
    created_at: datetime
    source: str
    unit: str
    status: str
    verdict: str


class LatestAnalysisOut(BaseModel):
    """The latest analysis: where it came from, its chart, and the full result of the abtest
    job (status, verdict, variants, comparisons, ...: ``backend.abtest.results.ExperimentAnalysis``
    as JSON)."""

    model_config = ConfigDict(extra="allow")

    id: int
    job_id: int | None
    created_at: datetime
    source: str
    chart: str = Field(description="URL of the CTR chart (PNG)")


class AnalysisOut(BaseModel):
    experiment: str
    latest: LatestAnalysisOut
    history: list[AnalysisBriefOut] = Field(description="newest first")
