"""Jobs over REST: submit, poll, list, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from backend.api.deps import CeleryDep, SessionDep, SettingsDep
from backend.api.params import IdPath, in_db_range
from backend.api.responses import errors
from backend.errors import InvalidInputError
from backend.jobs import repository as repo
from backend.jobs import service
from backend.jobs.kind import installed
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
    return [
        JobKindOut(
            name=k.name, description=k.description, params_schema=k.params_model.model_json_schema()
        )
        for k in installed()
    ]


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    kind: str | None = None,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> JobPage:
    """List jobs, newest first; pass next_cursor back as cursor for the next page."""
    catalog = installed()
    if kind is not None and kind not in catalog:
        known = ", ".join(catalog.names())
        raise InvalidInputError(f"unknown job kind {kind!r}; known kinds: {known}")
    before = service.decode_cursor(cursor) if cursor else None
    if before is not None and not in_db_range(before):  # a forged cursor
        raise InvalidInputError(
            "cursor is not valid; pass the next_cursor value from the previous page"
        )
    jobs = repo.page(session, kind=kind, state=state, limit=limit + 1, before_id=before)
    items = [service.to_out(j, with_stages=False) for j in jobs[:limit]]
    next_cursor = service.encode_cursor(jobs[limit - 1].id) if len(jobs) > limit else None
    return JobPage(items=items, next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=errors(404, s404="no such job"))
def get_job(job_id: IdPath, session: SessionDep) -> JobOut:
    """One job: state, progress, stages with durations, and the result or error."""
    return service.to_out(service.get_or_404(session, job_id))


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses=errors(404, 409, s404="no such job", s409="the job has already ended"),
)
def cancel_job(job_id: IdPath, session: SessionDep, celery: CeleryDep) -> JobOut:
    """Cancel a queued job now, or ask a running one to stop at its next checkpoint."""
    service.cancel(session, celery, job_id)
    session.commit()
    return service.to_out(service.get_or_404(session, job_id))
