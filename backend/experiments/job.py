"""``abtest``: analyse an experiment from the lake or a CSV export, store the result and chart."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from backend.abtest.experiment import analyze_users
from backend.abtest.inputs import csv_variants
from backend.abtest.metrics import MetricName
from backend.abtest.sequential import DEFAULT_N_STAR
from backend.abtest.users import users_from_csv, users_from_table
from backend.config import Settings
from backend.db.session import session_scope
from backend.experiments import service
from backend.jobs.context import JobContext
from backend.jobs.kind import JobKind
from backend.jobs.params import (
    JobParams,
    confined,
    context_settings,
    custom_error,
    path_error,
)
from backend.jsonable import to_jsonable
from backend.paths import PathNotAllowedError, confine

EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
# A file the upload route stored: a name in the uploads dir, never a path.
UPLOAD_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}\.csv$")
# Up to this size a CSV's variant column is read at submit time to check the control variant;
# a larger file is checked by the worker (reading it in the request would hold the API).
CONTROL_CHECK_MAX_BYTES = 32 * 2**20

Positive = Annotated[float, Field(gt=0)]


class AbTestParams(JobParams):
    experiment: str = Field(description="experiment name (1-128 of [A-Za-z0-9_.-])")
    source: Literal["lake", "csv"] = Field(default="lake", description="where the events are")
    csv_path: str | None = Field(
        default=None, description="CSV file when source=csv, inside the allowed roots"
    )
    upload: str | None = Field(
        default=None,
        description="source=csv: the name of an uploaded file in the uploads dir (what "
        "POST /experiments/{name}/upload stores), instead of csv_path",
    )
    unit: Literal["user", "impression"] = Field(
        default="user",
        description="unit of analysis: users, as randomised (default), or impression, which "
        "treats every impression as an independent trial and inflates significance (CTR only)",
    )
    metric: MetricName = Field(
        default="ctr",
        description="the metric the verdict is about: ctr (clicks/impressions, delta method), "
        "click_users (share of exposed users who clicked), clicks, views, purchases or value "
        "per user (Welch t-test)",
    )
    guardrails: list[MetricName] = Field(
        default_factory=list,
        description="metrics checked for significant harm (one-sided test), e.g. [purchases]",
    )
    guardrail_margin: float = Field(
        default=0.0, ge=0, description="harm only beyond this drop (in the metric's units)"
    )
    cuped: bool = Field(
        default=False,
        description="CUPED variance reduction with the same metric before the experiment: "
        "pre_* CSV columns, or the lake's events in the pre-period",
    )
    pre_period_days: float = Field(
        default=14.0, gt=0, le=366, description="source=lake with cuped: pre-period length"
    )
    start: datetime | None = Field(
        default=None,
        description="source=lake: when the experiment started (events before it are the "
        "pre-period; default: its first event)",
    )
    sequential: bool = Field(
        default=False,
        description="always-valid p-values and confidence sequences, for watching a live test",
    )
    n_star: float = Field(
        default=DEFAULT_N_STAR,
        gt=0,
        description="sequential tuning: total users (all arms) at which you expect to decide",
    )
    control: str | None = Field(
        default=None, description="control variant (default: 'control' if present, else the first)"
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0, lt=1)
    expected_split: dict[str, Positive] | None = Field(
        default=None, description="configured traffic weights per variant, for the SRM check"
    )
    yates: bool = False
    fisher: bool = False
    prior: tuple[Positive, Positive] = Field(
        default=(1.0, 1.0), description="Beta prior (a, b), both > 0"
    )
    mc_samples: int = Field(default=0, ge=0, le=10_000_000)
    seed: int | None = Field(default=0, ge=0)
    chart: bool = True

    @field_validator("experiment")
    @classmethod
    def _name(cls, v: str) -> str:
        if not EXPERIMENT_NAME.match(v):
            raise ValueError("experiment must be 1-128 characters of [A-Za-z0-9_.-]")
        return v

    @field_validator("csv_path")
    @classmethod
    def _confined(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else confined(v, info, kind="file")

    @field_validator("upload")
    @classmethod
    def _upload_name(cls, v: str | None) -> str | None:
        if v is not None and not UPLOAD_NAME.match(v):
            raise ValueError("upload must be the name of an uploaded .csv file, not a path")
        return v

    @field_validator("control")
    @classmethod
    def _known_control(cls, v: str | None, info: ValidationInfo) -> str | None:
        # Known at submit time for a CSV (csv_path comes first and has passed its checks); the
        # lake's variants are known only when the worker reads it.
        settings = context_settings(info)
        csv_path, upload = info.data.get("csv_path"), info.data.get("upload")
        if v is None or settings is None or info.data.get("source") != "csv":
            return v
        try:
            if csv_path:
                path = confine(csv_path, settings, field="csv_path")
            elif upload:
                path = confine(settings.uploads_dir / upload, settings, field="upload")
            else:
                return v
            size = path.stat().st_size
        except (PathNotAllowedError, OSError):
            return v  # changed since csv_path was checked; the worker reports it
        if size > CONTROL_CHECK_MAX_BYTES:
            return v  # the worker checks it
        variants = csv_variants(path)
        if variants is not None and v not in variants:
            raise custom_error(
                "unknown_control",
                f"control variant {v!r} is not in the CSV's variant column (it has "
                f"{len(variants)} variant(s)); give one of the file's variants",
            )
        return v

    @field_validator("power")
    @classmethod
    def _power_above_alpha(cls, v: float, info: ValidationInfo) -> float:
        alpha = info.data.get("alpha")
        if alpha is not None and not alpha < v:
            raise ValueError(
                f"power ({v:g}) must be above alpha ({alpha:g}): a test has power alpha "
                "against no effect at all"
            )
        return v

    @model_validator(mode="after")
    def _csv_needs_path(self) -> AbTestParams:
        if self.source == "csv" and bool(self.csv_path) == bool(self.upload):
            raise ValueError("source=csv needs csv_path or upload (one of the two)")
        if self.source == "lake" and (self.csv_path or self.upload):
            raise ValueError("csv_path and upload are only for source=csv")
        if self.source == "csv" and self.start is not None:
            raise ValueError("start is only for source=lake (a CSV carries pre_* columns)")
        return self

    @model_validator(mode="after")
    def _upload_exists(self, info: ValidationInfo) -> AbTestParams:
        settings = context_settings(info)
        if self.upload and settings is not None:
            try:
                self.csv_file(settings)
            except PathNotAllowedError as exc:
                raise path_error(exc) from None
        return self

    def csv_file(self, settings: Settings) -> Path:
        """The resolved CSV file, checked again right before it is read."""
        if self.upload:
            return confine(settings.uploads_dir / self.upload, settings, field="upload")
        return confine(self.csv_path or "", settings, field="csv_path")


def run(ctx: JobContext, params: AbTestParams) -> dict[str, Any]:
    with ctx.stage("load") as st:
        if params.source == "csv":
            users = users_from_csv(params.csv_file(ctx.settings))
            st.rows_in = len(users)
        else:
            from backend.lake.readers import read_experiment_users

            lake = read_experiment_users(
                ctx.settings.lake_dir,
                params.experiment,
                start=params.start,
                pre_period=timedelta(days=params.pre_period_days) if params.cuped else None,
            )
            st.rows_in = len(lake.users)
            st.extra["start"] = lake.start.isoformat()
            users = users_from_table(lake.users, source="the lake")
        st.rows_out = int(users["variant"].nunique())
    ctx.progress(0.3, "analysing")
    with ctx.stage("analyze", rows_in=len(users)) as st:
        analysis = analyze_users(
            users,
            control=service.choose_control(sorted(users["variant"].unique()), params.control),
            metric=params.metric,
            guardrails=params.guardrails,
            guardrail_margin=params.guardrail_margin,
            cuped=params.cuped,
            sequential=params.sequential,
            n_star=params.n_star,
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
        result = to_jsonable(analysis)
        st.rows_out = len(result["comparisons"])
    png = None
    if params.chart:
        ctx.progress(0.7, "drawing the chart")
        with ctx.stage("chart") as st:
            from backend.abtest.chart import render_ctr_chart

            png = render_ctr_chart(analysis)
            st.extra["bytes"] = len(png)
    with ctx.stage("store"), session_scope(ctx.settings.sqlalchemy_url) as s:
        analysis_id = service.store_analysis(
            s,
            experiment=params.experiment,
            job_id=ctx.job_id,
            source=params.source,
            unit=params.unit,
            result=result,
            chart_png=png,
        )
    return {"analysis_id": analysis_id, "experiment": params.experiment, **result}


KIND = JobKind(
    "abtest",
    AbTestParams,
    run,
    "Analyse an A/B test (CTR by default, or another per-user metric) and store the result.",
)
