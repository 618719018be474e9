"""Experiments, their stored analyses and the sample-size planner at the API boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.registry.schemas import VERSION_PATTERN


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
    status: Literal["draft", "running", "stopped"] | None = Field(
        default=None, description="the definition's status; null when it was never defined"
    )
    definition: ExperimentOut | None = Field(
        default=None, description="the definition (variants, split), when it was defined"
    )


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


# --- Experiment definitions: what serving runs -------------------------------------------------

#: Experiment and variant names travel in every impression event, so they follow the event
#: contract's id rule.
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
NAME_RULE = "1-64 characters of [A-Za-z0-9_-]"
Status = Literal["draft", "running", "stopped"]


class VariantIn(BaseModel):
    """One arm: its share of the traffic and what it serves (a model version, or a strategy)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(pattern=NAME_PATTERN, description=f"variant name, {NAME_RULE}")
    weight: float = Field(gt=0, le=1e6, description="traffic share, in any unit (50 = 50/total)")
    model_version: str | None = Field(
        default=None, pattern=VERSION_PATTERN, description="a registered model version"
    )
    strategy: Literal["popular"] | None = Field(
        default=None, description="popular: the active model's popularity list"
    )

    @model_validator(mode="after")
    def _one_source(self) -> VariantIn:
        if (self.model_version is None) == (self.strategy is None):
            raise ValueError(
                f"variant {self.name!r} needs exactly one of model_version (a registered "
                "version) or strategy ('popular')"
            )
        return self


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(pattern=NAME_PATTERN, description=f"experiment name, {NAME_RULE}")
    description: str = Field(default="", max_length=2000)
    variants: list[VariantIn] = Field(min_length=1, max_length=20)


class VariantOut(BaseModel):
    name: str
    weight: float
    model_version: str | None
    strategy: Literal["popular"] | None


class ExperimentOut(BaseModel):
    """An experiment definition and where it is in its life: draft, running, stopped."""

    name: str
    description: str
    status: Status
    variants: list[VariantOut]
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None


ExperimentSummaryOut.model_rebuild()  # it names ExperimentOut, defined after it
