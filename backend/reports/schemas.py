"""Pipeline performance reports at the API boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.reports.params import ReportState


class ReportRequest(BaseModel):
    """The body of POST /reports/pipeline: the same filters as the GET query."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: str | None = None
    since: str | None = None
    until: str | None = None
    last: int | None = None
    state: ReportState | None = None
    recent: int | None = None
    factor: float | None = None
    slowest: int | None = None


class PipelineReportOut(BaseModel):
    """Per kind and stage timings over the selected runs (``backend.reports.service``).

    The top-level fields are listed; each kind's stages, box plots, trends and regressions are
    described by ``definitions`` in the report itself.
    """

    model_config = ConfigDict(extra="allow")

    report_id: int | None = Field(description="the stored report's id, or null when computed now")
    report_version: int
    generated_at: str
    filters: dict[str, Any]
    database: str
    runs: int
    message: str | None
    kinds: list[dict[str, Any]]
    slowest_runs: list[dict[str, Any]]
    regressions: list[dict[str, Any]]


class StoredReportOut(BaseModel):
    id: int
    job_id: int | None
    created_at: datetime
    params: dict[str, Any]
    runs: int | None
    regressions: int
    json_url: str = Field(alias="json", description="the report as JSON")
    html: str = Field(description="the report as an HTML page")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ReportListOut(BaseModel):
    items: list[StoredReportOut]
