"""Pipeline performance reports: computed on the fly or read back stored, as JSON, CSV or HTML."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from backend.api.deps import CeleryDep, SessionDep
from backend.api.responses import errors
from backend.errors import describe
from backend.jobs.schemas import JobOut
from backend.reports import service
from backend.reports.params import MAX_LAST
from backend.reports.render import error_html, to_csv, to_html
from backend.reports.schemas import PipelineReportOut, ReportListOut, ReportRequest

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


def _raw(
    kind: str | None,
    since: str | None,
    until: str | None,
    last: int | str | None,
    state: str | None,
    recent: int | str | None,
    factor: float | str | None,
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
) -> PipelineReportOut | Response:
    """Per kind and stage timings over the selected runs (JSON; CSV with Accept: text/csv)."""
    found = service.find(session, _raw(kind, since, until, last, state, recent, factor), report_id)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(
            to_csv(found.report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'inline; filename="pipeline-report.csv"'},
        )
    return PipelineReportOut.model_validate({"report_id": found.report_id, **found.report})


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
    try:
        found = service.find(
            session, _raw(kind, since, until, last, state, recent, factor), report_id
        )
    except Exception as exc:
        described = describe(exc)
        if described is None:
            raise
        # A browser shows the page, so bad input gets a page that says what to fix.
        return HTMLResponse(error_html(described.message), status_code=described.status)
    return HTMLResponse(to_html(found.report, report_id=found.report_id))


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
    job = service.submit(session, celery, (body or ReportRequest()).model_dump())
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return job


@router.get("", response_model=ReportListOut)
def list_reports(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> ReportListOut:
    """Stored reports, newest first, with their filters and headline figures."""
    return service.stored(session, limit)
