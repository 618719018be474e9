"""The rules of jobs: create, dispatch after commit, cancel. Services flush; owners commit."""

from __future__ import annotations

import base64
import logging
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.config import Settings, get_settings
from backend.db.base import utcnow
from backend.db.tables import Job
from backend.db.types import in_db_range
from backend.errors import ConflictError, InvalidInputError, NotFoundError, UnavailableError
from backend.jobs import repository as repo
from backend.jobs.kind import installed
from backend.jobs.params import non_finite
from backend.jobs.queue import QUEUE, RUN_JOB_TASK
from backend.jobs.schemas import JobKindOut, JobOut, JobPage, JobState, StageOut

log = logging.getLogger(__name__)


def parse_params(kind: str, params: dict[str, Any], settings: Settings) -> BaseModel:
    """The kind's params model, after every check the worker makes before it runs the job.

    The API calls this at submit time and the worker again when the job starts (a file may have
    vanished since): the same code, with the settings in pydantic's validation context, so files
    are confined to the allowed roots and sizes stay under the ceilings. NaN and infinity are
    refused anywhere in the params, also where a kind accepts any JSON value. Raises
    ``InvalidInputError`` whose detail lists ``{loc, msg, type}`` with ``loc`` from ``params``.
    """
    job_kind = installed().get(kind)
    if job_kind is None:
        raise _unknown_kind(kind)
    errors: list[dict[str, Any]] = [
        {
            "loc": ["params", *loc],
            "msg": "must be a finite number; NaN and infinity are not allowed",
            "type": "finite_number",
        }
        for loc in non_finite(params)
    ]
    if not errors:
        try:
            return job_kind.params_model.model_validate(params, context={"settings": settings})
        except ValidationError as exc:
            errors = [
                {"loc": ["params", *err["loc"]], "msg": err["msg"], "type": err["type"]}
                for err in exc.errors()
            ]
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    raise InvalidInputError(f"bad params for kind {kind!r}: {problems}", detail=errors)


def _unknown_kind(kind: str) -> InvalidInputError:
    known = ", ".join(installed().names())
    return InvalidInputError(f"unknown job kind {kind!r}; known kinds: {known}")


def validate_params(
    kind: str, params: dict[str, Any], settings: Settings | None = None
) -> dict[str, Any]:
    """Check the kind and its params (see ``parse_params``); return them with defaults filled in."""
    model = parse_params(kind, params, settings or get_settings())
    return model.model_dump(mode="json")


def create(
    session: Session,
    kind: str,
    params: dict[str, Any],
    idempotency_key: str | None,
    *,
    settings: Settings | None = None,
) -> tuple[Job, bool]:
    """Add a queued job, or return the one with the same idempotency key. Flushes only.

    ``settings`` (default: the process's) decide the allowed roots and ceilings of the params.
    Returns (job, created).
    """
    clean = validate_params(kind, params, settings)
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


def send(celery: Celery, job_id: int) -> str:
    """Put the job's message on the queue; returns the task id. Raises if the broker is down."""
    return str(celery.send_task(RUN_JOB_TASK, args=[job_id], queue=QUEUE).id)


def dispatch(session: Session, celery: Celery, job: Job) -> None:
    """Send the committed job to the queue. If the broker is unreachable, fail the job.

    A crash between the commit and this send leaves the job queued with no dispatch: the
    supervisor's reconciler sends it after ``job_dispatch_grace_s``. A crash after the send but
    before the dispatch is recorded makes the reconciler send it again: a duplicate message,
    which the worker drops (the job is running or has ended by then).
    """
    try:
        task_id = send(celery, job.id)
    except Exception as exc:  # kombu raises several types for an unreachable broker
        log.warning("broker unavailable while dispatching job %s: %s", job.id, exc)
        seen = repo.seen(session, job.id)
        if seen is not None:
            repo.end_unstarted(
                session,
                seen,
                "failed",
                error=f"could not enqueue: broker unavailable ({exc})",
                message="could not enqueue",
                now=utcnow(),
            )
        session.flush()
        raise UnavailableError(
            "the job queue (broker) is unavailable; the job was recorded as failed, retry later",
            detail={"job_id": job.id},
        ) from exc
    repo.mark_sent(session, job.id, task_id, utcnow())
    session.flush()


def submit(
    session: Session,
    celery: Celery,
    kind: str,
    params: dict[str, Any],
    key: str | None,
    *,
    settings: Settings | None = None,
) -> tuple[Job, bool]:
    """Create, commit, then enqueue: the owner (a request) calls this as its unit of work.

    The commit before the send is the point: a worker never sees a task whose row is missing.
    A retry with the same Idempotency-Key that finds the job queued and never sent (its first
    request died between the commit and the send) sends it.
    """
    job, created = create(session, kind, params, key, settings=settings)
    session.commit()
    if created or (job.state == "queued" and job.dispatched_at is None):
        try:
            dispatch(session, celery, job)
        finally:
            session.commit()
    session.refresh(job)
    return job, created


def cancel(
    session: Session, celery: Celery, job_id: int, *, heartbeat_timeout_s: float | None = None
) -> Job:
    """Cancel a queued job at once; ask a running job to stop at its next checkpoint.

    A running job whose heartbeat is older than the timeout has lost its worker: nothing would
    ever read the request, so it is cancelled at once (and the reaper never re-queues a job whose
    cancel was requested).
    """
    timeout = (
        get_settings().job_heartbeat_timeout_s
        if heartbeat_timeout_s is None
        else heartbeat_timeout_s
    )
    for _ in range(5):  # each pass loses only to a concurrent transition of the same job
        seen = repo.seen(session, job_id)
        if seen is None:
            raise NotFoundError(f"job {job_id} not found")
        if seen.state in repo.TERMINAL:
            raise ConflictError(f"job {job_id} has already ended ({seen.state}); nothing to cancel")
        now = utcnow()
        repo.request_cancel(session, job_id)
        if seen.state == "queued":
            if repo.end_unstarted(
                session,
                seen,
                "cancelled",
                error=None,
                message="cancelled before it started",
                now=now,
            ):
                _revoke(celery, session, job_id)
                break
        elif _stale(seen, now, timeout):
            if repo.end_stale(
                session,
                seen,
                "cancelled",
                error=None,
                message="cancelled; its worker had stopped responding",
                now=now,
            ):
                break
        else:
            repo.set_message(session, job_id, "cancel requested; stopping at the next checkpoint")
            break
    session.flush()
    job = repo.get(session, job_id)
    assert job is not None
    session.refresh(job)
    return job


def _stale(seen: repo.Seen, now: datetime, timeout_s: float) -> bool:
    beat = seen.heartbeat_at or seen.started_at or seen.created_at
    return beat < now - timedelta(seconds=timeout_s)


def _revoke(celery: Celery, session: Session, job_id: int) -> None:
    job = repo.get(session, job_id)
    if job is None or not job.celery_task_id:
        return
    try:
        celery.control.revoke(job.celery_task_id)
    except Exception as exc:  # the worker also checks the row, so this is best effort
        log.info("revoke of %s not delivered: %s", job.celery_task_id, exc)


def get_or_404(session: Session, job_id: int) -> Job:
    """The job with its stages loaded; ``NotFoundError`` when there is none."""
    job = repo.get(session, job_id, with_stages=True)
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    return job


def read(session: Session, job_id: int) -> JobOut:
    """One job as the API shows it: state, progress, the stages of its latest attempt."""
    return to_out(get_or_404(session, job_id))


def page(
    session: Session,
    *,
    kind: str | None = None,
    state: JobState | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> JobPage:
    """Jobs newest first, without their stages; ``next_cursor`` continues after the last one."""
    if kind is not None and kind not in installed():
        raise _unknown_kind(kind)
    before = decode_cursor(cursor) if cursor else None
    jobs = repo.page(session, kind=kind, state=state, limit=limit + 1, before_id=before)
    items = [to_out(j, with_stages=False) for j in jobs[:limit]]
    next_cursor = encode_cursor(jobs[limit - 1].id) if len(jobs) > limit else None
    return JobPage(items=items, next_cursor=next_cursor)


def kinds() -> list[JobKindOut]:
    """The installed job kinds with the JSON schema of their params."""
    return [
        JobKindOut(
            name=k.name, description=k.description, params_schema=k.params_model.model_json_schema()
        )
        for k in installed()
    ]


BAD_CURSOR = "cursor is not valid; pass the next_cursor value from the previous page"


def encode_cursor(job_id: int) -> str:
    """The opaque page cursor that continues below ``job_id``."""
    return base64.urlsafe_b64encode(f"j{job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The job id a cursor names; ``InvalidInputError`` for a cursor this API never gave out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("j"):
            raise ValueError
        job_id = int(raw[1:])
    except ValueError:
        raise InvalidInputError(BAD_CURSOR) from None
    if not in_db_range(job_id):  # a forged cursor: it would overflow the id column
        raise InvalidInputError(BAD_CURSOR)
    return job_id


def to_out(job: Job, *, with_stages: bool = True) -> JobOut:
    """The API form of a job row; ``with_stages`` adds the stages of its latest attempt."""
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
