"""The rules of jobs: create, dispatch after commit, cancel. Services flush; owners commit."""

from __future__ import annotations

import base64
import logging
from typing import Any

from celery import Celery
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db.tables import Job
from backend.errors import ConflictError, InvalidInputError, NotFoundError, UnavailableError
from backend.jobs import repository as repo
from backend.jobs.kinds import all_kinds, get_kind
from backend.jobs.queue import QUEUE, RUN_JOB_TASK
from backend.jobs.schemas import JobOut, StageOut

log = logging.getLogger(__name__)


def validate_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check the kind and its params; return the params with defaults filled in."""
    job_kind = get_kind(kind)
    if job_kind is None:
        known = ", ".join(all_kinds())
        raise InvalidInputError(f"unknown job kind {kind!r}; known kinds: {known}")
    try:
        model = job_kind.params_model.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"params.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInputError(
            f"bad params for kind {kind!r}: {problems}",
            detail=[
                {"loc": ["params", *err["loc"]], "msg": err["msg"], "type": err["type"]}
                for err in exc.errors()
            ],
        ) from None
    return model.model_dump(mode="json")


def create(
    session: Session, kind: str, params: dict[str, Any], idempotency_key: str | None
) -> tuple[Job, bool]:
    """Add a queued job, or return the one with the same idempotency key. Flushes only.

    Returns (job, created).
    """
    clean = validate_params(kind, params)
    if idempotency_key is not None:
        existing = repo.by_idempotency_key(session, idempotency_key)
        if existing is not None:
            return _same_request(existing, kind, clean), False
    try:
        with session.begin_nested():
            job = repo.add(session, kind, clean, idempotency_key)
    except IntegrityError:
        # A concurrent request with the same key won the race.
        existing = repo.by_idempotency_key(session, idempotency_key or "")
        if existing is None:
            raise
        return _same_request(existing, kind, clean), False
    return job, True


def _same_request(job: Job, kind: str, params: dict[str, Any]) -> Job:
    if job.kind != kind or job.params != params:
        raise ConflictError(
            f"Idempotency-Key was already used for job {job.id} with a different kind or params; "
            "use a new key for a new request"
        )
    return job


def dispatch(session: Session, celery: Celery, job: Job) -> None:
    """Send the committed job to the queue. If the broker is unreachable, fail the job."""
    try:
        result = celery.send_task(RUN_JOB_TASK, args=[job.id], queue=QUEUE)
    except Exception as exc:  # kombu raises several types for an unreachable broker
        log.warning("broker unavailable while dispatching job %s: %s", job.id, exc)
        repo.finish(job, "failed", error=f"could not enqueue: broker unavailable ({exc})")
        session.flush()
        raise UnavailableError(
            "the job queue (broker) is unavailable; the job was recorded as failed, retry later",
            detail={"job_id": job.id},
        ) from exc
    job.celery_task_id = result.id
    session.flush()


def submit(
    session: Session, celery: Celery, kind: str, params: dict[str, Any], key: str | None
) -> tuple[Job, bool]:
    """Create, commit, then enqueue: the owner (a request) calls this as its unit of work.

    The commit before the send is the point: a worker never sees a task whose row is missing.
    """
    job, created = create(session, kind, params, key)
    session.commit()
    if created:
        try:
            dispatch(session, celery, job)
        finally:
            session.commit()
    session.refresh(job)
    return job, created


def cancel(session: Session, celery: Celery, job_id: int) -> Job:
    """Cancel a queued job at once; ask a running job to stop at its next checkpoint."""
    job = repo.get_for_update(session, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    if job.state in repo.TERMINAL:
        raise ConflictError(f"job {job_id} has already ended ({job.state}); nothing to cancel")
    job.cancel_requested = True
    if job.state == "queued":
        repo.finish(job, "cancelled", error=None)
        job.message = "cancelled before it started"
        if job.celery_task_id:
            try:
                celery.control.revoke(job.celery_task_id)
            except Exception as exc:  # the worker also checks the row, so this is best effort
                log.info("revoke of %s not delivered: %s", job.celery_task_id, exc)
    else:
        job.message = "cancel requested; stopping at the next checkpoint"
    session.flush()
    return job


def get_or_404(session: Session, job_id: int) -> Job:
    job = repo.get(session, job_id, with_stages=True)
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    return job


def encode_cursor(job_id: int) -> str:
    return base64.urlsafe_b64encode(f"j{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("j"):
            raise ValueError
        return int(raw[1:])
    except ValueError:
        raise InvalidInputError(
            "cursor is not valid; pass the next_cursor value from the previous page"
        ) from None


def to_out(job: Job, *, with_stages: bool = True) -> JobOut:
    stages = repo.stages_of_attempt(job) if with_stages else []
    return JobOut(
        id=job.id,
        kind=job.kind,
        params=job.params,
        state=job.state,  # type: ignore[arg-type]
        progress=job.progress,
        message=job.message,
        result=job.result,
        error=job.error,
        attempts=job.attempts,
        cancel_requested=job.cancel_requested,
        celery_task_id=job.celery_task_id,
        worker=job.worker,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        stages=[
            StageOut(
                name=s.name,
                attempt=s.attempt,
                started_at=s.started_at,
                finished_at=s.finished_at,
                duration_s=s.duration_s,
                rows_in=s.rows_in,
                rows_out=s.rows_out,
                extra=s.extra or {},
            )
            for s in stages
        ],
    )
