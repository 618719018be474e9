"""All SQL for jobs and their stages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from backend.db.base import utcnow
from backend.db.tables import Job, JobStage

TERMINAL = ("succeeded", "failed", "cancelled")
STATES = ("queued", "running", *TERMINAL)


def get(session: Session, job_id: int, *, with_stages: bool = False) -> Job | None:
    stmt = select(Job).where(Job.id == job_id)
    if with_stages:
        stmt = stmt.options(selectinload(Job.stages))
    return session.scalars(stmt).one_or_none()


def get_for_update(session: Session, job_id: int) -> Job | None:
    return session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one_or_none()


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


def finish(
    job: Job, state: str, *, result: dict[str, Any] | None = None, error: str | None = None
) -> None:
    job.state = state
    job.result = result
    job.error = error
    job.finished_at = utcnow()
    if state == "succeeded":
        job.progress = 1.0


def add_stage(session: Session, stage: JobStage) -> None:
    session.add(stage)
    session.flush()


def stages_of_attempt(job: Job) -> list[JobStage]:
    return [s for s in job.stages if s.attempt == job.attempts] if job.attempts else []
