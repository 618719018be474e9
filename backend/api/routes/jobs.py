"""Jobs over REST: submit, poll, list, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from backend.api.deps import CeleryDep, SessionDep, SettingsDep
from backend.api.params import IdPath
from backend.api.responses import errors
from backend.jobs import service
from backend.jobs.schemas import JobCreate, JobKindOut, JobOut, JobPage, JobState

router = APIRouter(prefix="/jobs", tags=["jobs"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        description="repeat a request with the same key to get the same job back",
    ),
]


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses={
        200: {"model": JobOut, "description": "a repeated Idempotency-Key: the same job again"},
        **errors(
            409,
            503,
            s409="the Idempotency-Key was used before with other params",
            s503="the broker is down: the job is marked failed",
        ),
    },
)
def submit_job(
    body: JobCreate,
    response: Response,
    session: SessionDep,
    celery: CeleryDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Submit a job; returns 202 with its Location. Poll GET /jobs/{id} until it ends."""
    job, created = service.submit(
        session, celery, body.kind, body.params, idempotency_key, settings=settings
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    if not created:
        response.status_code = 200
    return service.to_out(job)


@router.get("/kinds", response_model=list[JobKindOut])
def list_kinds() -> list[JobKindOut]:
    """The job kinds this server accepts, with the JSON schema of their params."""
    return service.kinds()


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    kind: str | None = None,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> JobPage:
    """List jobs, newest first; pass next_cursor back as cursor for the next page."""
    return service.page(session, kind=kind, state=state, limit=limit, cursor=cursor)


@router.get("/{job_id}", response_model=JobOut, responses=errors(404, s404="no such job"))
def get_job(job_id: IdPath, session: SessionDep) -> JobOut:
    """One job: state, progress, stages with durations, and the result or error."""
    return service.read(session, job_id)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses=errors(404, 409, s404="no such job", s409="the job has already ended"),
)
def cancel_job(job_id: IdPath, session: SessionDep, celery: CeleryDep) -> JobOut:
    """Cancel a queued job now, or ask a running one to stop at its next checkpoint."""
    service.cancel(session, celery, job_id)
    return service.read(session, job_id)
