"""All SQL for model versions and metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.db.tables import Metric, ModelVersion


def add(session: Session, **fields: Any) -> ModelVersion:
    row = ModelVersion(**fields)
    session.add(row)
    session.flush()
    return row


def get(session: Session, model_id: int) -> ModelVersion | None:
    return session.get(ModelVersion, model_id)


def by_version(session: Session, version: str) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.version == version)).first()


def active(session: Session) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.active.is_(True))).first()


def active_pointer(session: Session) -> tuple[int, str, str] | None:
    """(id, version, path) of the active model: the cheap query serving polls."""
    row = session.execute(
        select(ModelVersion.id, ModelVersion.version, ModelVersion.path).where(
            ModelVersion.active.is_(True)
        )
    ).first()
    return None if row is None else (int(row[0]), str(row[1]), str(row[2]))


def page(session: Session, limit: int) -> Sequence[ModelVersion]:
    return session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc()).limit(limit)).all()


def set_active(session: Session, model: ModelVersion) -> None:
    """Make ``model`` the only active version (one UPDATE clears, the other sets)."""
    session.execute(update(ModelVersion).where(ModelVersion.active.is_(True)).values(active=False))
    model.active = True
    model.activated_at = utcnow()
    session.flush()


def add_metrics(
    session: Session,
    job_id: int,
    model_id: int | None,
    rows: list[tuple[str, int | None, str, float | None]],
) -> int:
    """Insert (subject, fold, name, value) rows for one job; returns how many."""
    session.add_all(
        Metric(job_id=job_id, model_id=model_id, subject=s, fold=f, name=n, value=v)
        for s, f, n, v in rows
    )
    session.flush()
    return len(rows)


def metrics(
    session: Session,
    *,
    job_id: int | None = None,
    model_id: int | None = None,
    name: str | None = None,
    limit: int = 1000,
) -> Sequence[Metric]:
    stmt = select(Metric).order_by(Metric.id).limit(limit)
    if job_id is not None:
        stmt = stmt.where(Metric.job_id == job_id)
    if model_id is not None:
        stmt = stmt.where(Metric.model_id == model_id)
    if name is not None:
        stmt = stmt.where(Metric.name == name)
    return session.scalars(stmt).all()
