"""Pipeline performance reports: computed on the fly or read back stored, as JSON, CSV or HTML."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from backend.api.deps import CeleryDep, SessionDep
from backend.api.params import DB_INT_MAX, in_db_range
from backend.api.responses import errors
from backend.errors import AppError, InvalidInputError, NotFoundError
from backend.jobs import service as jobs
from backend.jobs.schemas import JobOut
from backend.reports import repository
from backend.reports.params import MAX_LAST, ReportState, parse_params
from backend.reports.render import error_html, to_csv, to_html
from backend.reports.schemas import PipelineReportOut, ReportListOut
from backend.reports.service import build_report

router = APIRouter(prefix="/reports", tags=["reports"])

HTML_PAGE = {"text/html": {"schema": {"type": "string"}}}

Kind = Annotated[str | None, Query(description="only this job kind")]
Since = Annotated[str | None, Query(description="runs started at or after (ISO 8601)")]
Until = Annotated[str | None, Query(description="runs started before (ISO 8601)")]
Last = Annotated[
    int | None,
    Query(ge=1, le=MAX_LAST, description=f"the N most recent runs of each kind (1-{MAX_LAST})"),
]
State = Annotated[str | None, Query(description="succeeded (default), failed, cancelled, any")]
Recent = Annotated[
    int | None, Query(ge=1, le=1000, description="regression window: the last M runs (1-1000)")
]
Factor = Annotated[
    float | None,
    Query(gt=1.0, le=100.0, description="regression threshold, above 1 and at most 100 (1.5)"),
]
ReportId = Annotated[
    str | None, Query(description="a stored report's id, or 'latest', instead of the filters")
]


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


def _resolve(
    session: Session, raw: dict[str, Any], report_id: str | None
) -> tuple[dict, int | None]:
    """The stored report named by ``report_id``, or a report computed now from the filters."""
    given = {k: v for k, v in raw.items() if v is not None}
    if report_id is None:
        return build_report(session, parse_params(given)), None
    if given:
        raise InvalidInputError(
            f"give report_id or filters, not both (got report_id and {', '.join(sorted(given))})"
        )
    if report_id == "latest":
        row = repository.latest(session)
        if row is None:
            raise NotFoundError(
                "no stored report yet; POST /api/v1/reports/pipeline (or submit a 'report' job)"
            )
    else:
        if not (report_id.isascii() and report_id.isdigit() and in_db_range(int(report_id))):
            raise InvalidInputError(
                f"report_id must be a number or 'latest' (ids run 1-{DB_INT_MAX}); "
                f"got {report_id[:40]!r}"
            )
        row = repository.get(session, int(report_id))
        if row is None:
            raise NotFoundError(f"report {report_id} not found; GET /api/v1/reports lists them")
    return row.result, row.id


def _raw(
    kind: str | None,
    since: str | None,
    until: str | None,
    last: int | None,
    state: str | None,
    recent: int | None,
    factor: float | None,
) -> dict[str, Any]:
    return {
        "kind": kind, "since": since, "until": until, "last": last, "state": state,
        "recent": recent, "factor": factor,
    }  # fmt: skip


@router.get(
    "/pipeline",
    response_model=PipelineReportOut,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **errors(404, s404="no such stored report"),
    },
)
def pipeline_report(
    request: Request,
    session: SessionDep,
    kind: Kind = None,
    since: Since = None,
    until: Until = None,
    last: Last = None,
    state: State = None,
    recent: Recent = None,
    factor: Factor = None,
    report_id: ReportId = None,
) -> Any:
    """Per kind and stage timings over the selected runs (JSON; CSV with Accept: text/csv)."""
    raw = _raw(kind, since, until, last, state, recent, factor)
    report, stored_id = _resolve(session, raw, report_id)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(
            to_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'inline; filename="pipeline-report.csv"'},
        )
    return {"report_id": stored_id, **report}


# The page takes every filter as text, so that even a malformed number gets an HTML answer.
TextLast = Annotated[str | None, Query(description="the N most recent runs of each kind")]
TextRecent = Annotated[str | None, Query(description="regression window: the last M runs")]
TextFactor = Annotated[str | None, Query(description="regression threshold (default 1.5)")]


@router.get(
    "/pipeline.html",
    response_class=HTMLResponse,
    responses={
        404: {"description": "no such stored report (an HTML page)", "content": HTML_PAGE},
        422: {"description": "invalid filters (an HTML page saying which)", "content": HTML_PAGE},
    },
)
def pipeline_report_html(
    session: SessionDep,
    kind: Kind = None,
    since: Since = None,
    until: Until = None,
    last: TextLast = None,
    state: State = None,
    recent: TextRecent = None,
    factor: TextFactor = None,
    report_id: ReportId = None,
) -> HTMLResponse:
    """The report as an HTML page with charts (stacked time per run, box plot per stage)."""
    raw = {
        "kind": kind, "since": since, "until": until, "last": last, "state": state,
        "recent": recent, "factor": factor,
    }  # fmt: skip
    try:
        report, stored_id = _resolve(session, raw, report_id)
    except AppError as exc:
        # A browser shows the page, so bad input gets a page that says what to fix.
        return HTMLResponse(error_html(exc.message), status_code=exc.status_code)
    return HTMLResponse(to_html(report, report_id=stored_id))


@router.post(
    "/pipeline",
    status_code=202,
    response_model=JobOut,
    responses=errors(503, s503="the broker is down: the job is marked failed"),
)
def submit_report(
    response: Response, session: SessionDep, celery: CeleryDep, body: ReportRequest | None = None
) -> JobOut:
    """Compute and store a report as a 'report' job; its result names the stored report_id."""
    params = {k: v for k, v in (body or ReportRequest()).model_dump().items() if v is not None}
    parse_params(params)  # a 422 that names the field, before a job row exists
    job, _ = jobs.submit(session, celery, "report", params, None)
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return jobs.to_out(job)


@router.get("", response_model=ReportListOut)
def list_reports(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> dict[str, Any]:
    """Stored reports, newest first, with their filters and headline figures."""
    items = [
        {
            "id": r.id,
            "job_id": r.job_id,
            "created_at": r.created_at,
            "params": r.params,
            "runs": r.result.get("runs"),
            "regressions": len(r.result.get("regressions", [])),
            "json": f"/api/v1/reports/pipeline?report_id={r.id}",
            "html": f"/api/v1/reports/pipeline.html?report_id={r.id}",
        }
        for r in repository.recent(session, limit)
    ]
    return {"items": items}
