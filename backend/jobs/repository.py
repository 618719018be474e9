"""All SQL for jobs and their stages.

Every transition that two processes could attempt at once (a worker starting a job, a supervisor
re-queueing it, a worker recording its end, a cancel) is one conditional UPDATE: it names the
state, attempt and heartbeat it saw, and its rowcount says whether it won. The attempt number is
the fencing token: a worker whose attempt was superseded can no longer change the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, and_, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from backend.db.tables import Job, JobStage

TERMINAL = ("succeeded", "failed", "cancelled")
STATES = ("queued", "running", *TERMINAL)


def get(session: Session, job_id: int, *, with_stages: bool = False) -> Job | None:
    stmt = select(Job).where(Job.id == job_id)
    if with_stages:
        stmt = stmt.options(selectinload(Job.stages))
    return session.scalars(stmt).one_or_none()


def by_idempotency_key(session: Session, key: str) -> Job | None:
    return session.scalars(select(Job).where(Job.idempotency_key == key)).one_or_none()


def add(session: Session, kind: str, params: dict[str, Any], idempotency_key: str | None) -> Job:
    job = Job(
        kind=kind,
        params=params,
        state="queued",
        progress=0.0,
        idempotency_key=idempotency_key,
        attempts=0,
        cancel_requested=False,
    )
    session.add(job)
    session.flush()
    return job


def page(
    session: Session,
    *,
    kind: str | None,
    state: str | None,
    limit: int,
    before_id: int | None,
) -> Sequence[Job]:
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if state:
        stmt = stmt.where(Job.state == state)
    if before_id is not None:
        stmt = stmt.where(Job.id < before_id)
    return session.scalars(stmt).all()


def counts_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    return {state: int(n) for state, n in rows}


def add_stage(session: Session, stage: JobStage) -> None:
    session.add(stage)
    session.flush()


def stages_of_attempt(job: Job) -> list[JobStage]:
    return [s for s in job.stages if s.attempt == job.attempts] if job.attempts else []


# --- Compare-and-set transitions (see the module docstring) ---------------------------------


@dataclass(frozen=True)
class Seen:
    """What a process read of a job before it tries a transition."""

    id: int
    state: str
    attempts: int
    heartbeat_at: datetime | None
    dispatched_at: datetime | None
    dispatches: int
    cancel_requested: bool
    worker: str | None
    created_at: datetime
    started_at: datetime | None


def _is(column: Any, value: Any) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value  # type: ignore[no-any-return]


def _cas(session: Session, where: list[ColumnElement[bool]], values: dict[str, Any]) -> bool:
    result = session.execute(
        update(Job).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


def _seen_columns() -> tuple[Any, ...]:
    return (
        Job.id,
        Job.state,
        Job.attempts,
        Job.heartbeat_at,
        Job.dispatched_at,
        Job.dispatches,
        Job.cancel_requested,
        Job.worker,
        Job.created_at,
        Job.started_at,
    )


def seen(session: Session, job_id: int) -> Seen | None:
    row = session.execute(select(*_seen_columns()).where(Job.id == job_id)).first()
    return None if row is None else Seen(*row)


def undispatched(session: Session, created_before: datetime, limit: int) -> list[Seen]:
    """Queued jobs never sent (or re-queued by the reaper), created before the grace cut-off."""
    rows = session.execute(
        select(*_seen_columns())
        .where(
            Job.state == "queued",
            Job.dispatched_at.is_(None),
            Job.cancel_requested.is_(False),
            Job.created_at < created_before,
        )
        .order_by(Job.id)
        .limit(limit)
    ).all()
    return [Seen(*r) for r in rows]


def queued_cancel_requested(session: Session, before: datetime, limit: int) -> list[Seen]:
    """Queued jobs whose cancel was requested before ``before`` (updated then) and never ended.

    A cancel normally ends a queued job at once; one that was re-queued for a retry after its
    cancel was asked (a transient error, then the worker died before its retry was sent) has no
    message and nobody to end it but the reconciler.
    """
    rows = session.execute(
        select(*_seen_columns())
        .where(Job.state == "queued", Job.cancel_requested.is_(True), Job.updated_at < before)
        .order_by(Job.id)
        .limit(limit)
    ).all()
    return [Seen(*r) for r in rows]


def dispatched_before(session: Session, before: datetime, limit: int) -> list[Seen]:
    """Queued jobs whose last message was sent before ``before`` and never started."""
    rows = session.execute(
        select(*_seen_columns())
        .where(
            Job.state == "queued",
            Job.dispatched_at < before,
            Job.cancel_requested.is_(False),
        )
        .order_by(Job.dispatched_at)
        .limit(limit)
    ).all()
    return [Seen(*r) for r in rows]


def stale_running(session: Session, beat_before: datetime, limit: int) -> list[Seen]:
    """Running jobs whose heartbeat is older than ``beat_before`` (or was never written)."""
    rows = session.execute(
        select(*_seen_columns())
        .where(
            Job.state == "running",
            or_(
                Job.heartbeat_at < beat_before,
                and_(
                    Job.heartbeat_at.is_(None),
                    func.coalesce(Job.started_at, Job.created_at) < beat_before,
                ),
            ),
        )
        .order_by(Job.id)
        .limit(limit)
    ).all()
    return [Seen(*r) for r in rows]


def claim_dispatch(session: Session, job: Seen, now: datetime) -> bool:
    """Take the right to send the job's message: only one of several supervisors wins."""
    return _cas(
        session,
        [
            Job.id == job.id,
            Job.state == "queued",
            Job.cancel_requested.is_(False),
            _is(Job.dispatched_at, job.dispatched_at),
        ],
        {"dispatched_at": now, "dispatches": Job.dispatches + 1},
    )


def release_dispatch(session: Session, job: Seen, claimed_at: datetime) -> bool:
    """Undo a claim whose send failed, so that the next pass sends the job again."""
    return _cas(
        session,
        [Job.id == job.id, Job.state == "queued", Job.dispatched_at == claimed_at],
        {"dispatched_at": job.dispatched_at, "dispatches": Job.dispatches - 1},
    )


def set_task_id(session: Session, job_id: int, task_id: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(celery_task_id=task_id)
        .execution_options(synchronize_session=False)
    )


def start(session: Session, job: Seen, worker: str, now: datetime, message: str) -> bool:
    """queued (or running with a stale heartbeat) -> running as attempt ``job.attempts + 1``."""
    return _cas(
        session,
        [
            Job.id == job.id,
            Job.state == job.state,
            Job.attempts == job.attempts,
            _is(Job.heartbeat_at, job.heartbeat_at),
            Job.cancel_requested.is_(False),
        ],
        {
            "state": "running",
            "attempts": Job.attempts + 1,
            "started_at": func.coalesce(Job.started_at, now),
            "heartbeat_at": now,
            "worker": worker,
            "message": message,
        },
    )


def beat(session: Session, job_id: int, attempt: int, now: datetime) -> bool:
    """The heartbeat of one attempt; False when that attempt no longer owns the job."""
    return _cas(
        session,
        [Job.id == job_id, Job.state == "running", Job.attempts == attempt],
        {"heartbeat_at": now},
    )


def end_attempt(
    session: Session,
    job_id: int,
    attempt: int,
    state: str,
    *,
    result: dict[str, Any] | None,
    error: str | None,
    message: str,
    now: datetime,
) -> bool:
    """running (as this attempt) -> a terminal state, with the result or the error."""
    values: dict[str, Any] = {
        "state": state,
        "result": result,
        "error": error,
        "message": message,
        "finished_at": now,
    }
    if state == "succeeded":
        values["progress"] = 1.0
    return _cas(
        session, [Job.id == job_id, Job.state == "running", Job.attempts == attempt], values
    )


def requeue_attempt(
    session: Session, job_id: int, attempt: int, message: str, now: datetime
) -> bool:
    """running (as this attempt) -> queued, for a retry whose message the task sends itself."""
    return _cas(
        session,
        [Job.id == job_id, Job.state == "running", Job.attempts == attempt],
        {
            "state": "queued",
            "message": message[:500],
            "heartbeat_at": None,
            "dispatched_at": now,
            "dispatches": Job.dispatches + 1,
        },
    )


def _stale_where(job: Seen) -> list[ColumnElement[bool]]:
    return [
        Job.id == job.id,
        Job.state == "running",
        Job.attempts == job.attempts,
        _is(Job.heartbeat_at, job.heartbeat_at),
    ]


def requeue_stale(session: Session, job: Seen, message: str) -> bool:
    """The reaper: running with the stale heartbeat it saw -> queued, to be sent again."""
    return _cas(
        session,
        [*_stale_where(job), Job.cancel_requested.is_(False)],
        {
            "state": "queued",
            "message": message[:500],
            "heartbeat_at": None,
            "dispatched_at": None,
            "worker": None,
        },
    )


def end_stale(
    session: Session, job: Seen, state: str, *, error: str | None, message: str, now: datetime
) -> bool:
    """The reaper or a cancel: running with the stale heartbeat it saw -> a terminal state."""
    return _cas(
        session,
        _stale_where(job),
        {"state": state, "error": error, "message": message[:500], "finished_at": now},
    )


def end_unstarted(
    session: Session, job: Seen, state: str, *, error: str | None, message: str, now: datetime
) -> bool:
    """queued (as seen) -> a terminal state: a cancel noticed before start, or a failed send."""
    return _cas(
        session,
        [Job.id == job.id, Job.state == "queued", Job.attempts == job.attempts],
        {"state": state, "error": error, "message": message[:500], "finished_at": now},
    )


def mark_sent(session: Session, job_id: int, task_id: str, now: datetime) -> None:
    """Record the submitter's own send (unless a supervisor has claimed the job meanwhile)."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.dispatched_at.is_(None))
        .values(celery_task_id=task_id, dispatched_at=now, dispatches=Job.dispatches + 1)
        .execution_options(synchronize_session=False)
    )


def request_cancel(session: Session, job_id: int) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )


def set_message(session: Session, job_id: int, message: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(message=message[:500])
        .execution_options(synchronize_session=False)
    )
