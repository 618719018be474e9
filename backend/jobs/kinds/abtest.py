"""``abtest``: analyse an experiment from the lake or a CSV export, store the result and chart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backend.abtest import analyze, counts_from_csv, counts_from_events
from backend.db.session import session_scope
from backend.experiments import repository
from backend.jobs.context import JobContext
from backend.jobs.kinds import JobKind, register

EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class AbTestParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment: str = Field(description="experiment name (1-128 of [A-Za-z0-9_.-])")
    source: Literal["lake", "csv"] = Field(default="lake", description="where the events are")
    csv_path: str | None = Field(default=None, description="CSV file when source=csv")
    unit: Literal["user", "impression"] = Field(
        default="user", description="unit of analysis; per impression inflates significance"
    )
    control: str | None = Field(
        default=None, description="control variant (default: 'control' if present, else the first)"
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0, lt=1)
    expected_split: dict[str, float] | None = Field(
        default=None, description="configured traffic weights per variant, for the SRM check"
    )
    yates: bool = False
    fisher: bool = False
    prior: tuple[float, float] = Field(default=(1.0, 1.0), description="Beta prior (a, b)")
    mc_samples: int = Field(default=0, ge=0, le=10_000_000)
    seed: int | None = 0
    chart: bool = True

    @field_validator("experiment")
    @classmethod
    def _name(cls, v: str) -> str:
        if not EXPERIMENT_NAME.match(v):
            raise ValueError("experiment must be 1-128 characters of [A-Za-z0-9_.-]")
        return v

    @model_validator(mode="after")
    def _csv_needs_path(self) -> AbTestParams:
        if self.source == "csv" and not self.csv_path:
            raise ValueError("source=csv needs csv_path")
        if self.source == "lake" and self.csv_path:
            raise ValueError("csv_path is only for source=csv")
        return self


def choose_control(variants: list[str], control: str | None) -> str:
    if control is not None:
        return control
    return "control" if "control" in variants else sorted(variants)[0]


def run(ctx: JobContext, params: AbTestParams) -> dict[str, Any]:
    with ctx.stage("load") as st:
        if params.source == "csv":
            counts = counts_from_csv(Path(params.csv_path or ""), unit=params.unit)
            st.rows_out = len(counts)
        else:
            from backend.pipeline.lake import read_experiment_events

            events = read_experiment_events(ctx.settings.lake_dir, params.experiment)
            st.rows_in = len(events)
            counts = counts_from_events(events, unit=params.unit, source="the lake")
            st.rows_out = len(counts)
    ctx.progress(0.3, "analysing")
    with ctx.stage("analyze", rows_in=len(counts)) as st:
        analysis = analyze(
            counts,
            control=choose_control([c.variant for c in counts], params.control),
            alpha=params.alpha,
            power=params.power,
            expected_split=params.expected_split,
            yates=params.yates,
            fisher=params.fisher,
            prior=params.prior,
            mc_samples=params.mc_samples,
            seed=params.seed,
            unit=params.unit,
        )
        result = analysis.to_dict()
        st.rows_out = len(result["comparisons"])
    png = None
    if params.chart:
        ctx.progress(0.7, "drawing the chart")
        with ctx.stage("chart") as st:
            from backend.abtest.chart import render_ctr_chart

            png = render_ctr_chart(analysis)
            st.extra["bytes"] = len(png)
    with ctx.stage("store"), session_scope(ctx.settings.sqlalchemy_url) as s:
        row = repository.add(
            s,
            experiment=params.experiment,
            job_id=ctx.job_id,
            source=params.source,
            unit=params.unit,
            result=result,
            chart_png=png,
        )
        analysis_id = row.id
    return {"analysis_id": analysis_id, "experiment": params.experiment, **result}


register(JobKind("abtest", AbTestParams, run, "Analyse an A/B test on CTR and store the result."))
