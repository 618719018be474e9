"""SQL tables. Alembic migrations are the only way these change in a database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db.base import Base, utcnow
from backend.db.types import UTCDateTime


class Job(Base):
    """One unit of work. The row is the source of truth; Celery only carries it."""

    __tablename__ = "jobs"
    # The supervisor's two queries: stale heartbeats of running jobs, stale dispatches of queued.
    __table_args__ = (
        Index("ix_jobs_state_heartbeat_at", "state", "heartbeat_at"),
        Index("ix_jobs_state_dispatched_at", "state", "dispatched_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(String(500))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    celery_task_id: Mapped[str | None] = mapped_column(String(64))
    # Which worker process runs the current attempt ("host:pid"), for operators and tests.
    worker: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # When the job's message was last sent to the broker (NULL: never, or re-queued by the
    # reaper), and how many times; the supervisor sends what is missing.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dispatches: Mapped[int] = mapped_column(Integer, default=0)
    # Written by the worker while the current attempt runs; a stale one means the worker is gone.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    stages: Mapped[list[JobStage]] = relationship(
        back_populates="job", order_by="JobStage.id", cascade="all, delete-orphan"
    )


class JobStage(Base):
    """One timed stage of one attempt of a job, with its rows in and out."""

    __tablename__ = "job_stages"
    __table_args__ = (Index("ix_job_stages_name_started", "name", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    name: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_s: Mapped[float | None] = mapped_column(Float)
    rows_in: Mapped[int | None] = mapped_column(Integer)
    rows_out: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    job: Mapped[Job] = relationship(back_populates="stages")


class ModelVersion(Base):
    """A trained model artifact on disk; at most one is active for serving."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    path: Mapped[str] = mapped_column(String(500))
    fingerprint: Mapped[str] = mapped_column(String(128))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    n_users: Mapped[int] = mapped_column(Integer, default=0)
    n_items: Mapped[int] = mapped_column(Integer, default=0)
    n_ratings: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Metric(Base):
    """One metric value: per (job, model, fold, metric). fold is NULL for aggregates."""

    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("job_id", "subject", "fold", "name", name="uq_metrics_job_subject"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    # What was measured: "svd", "baseline_only", "surprise:svd", ...
    subject: Mapped[str] = mapped_column(String(64))
    fold: Mapped[int | None] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64), index=True)
    value: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ExperimentAnalysisRow(Base):
    """One stored A/B analysis of an experiment; the history is every row for a name."""

    __tablename__ = "experiment_analyses"
    __table_args__ = (Index("ix_experiment_analyses_name_created", "experiment", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment: Mapped[str] = mapped_column(String(128))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(16))  # "lake" or "csv"
    unit: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    chart_png: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Alert(Base):
    """An alert fired by the live monitor's rules."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    message: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MonitorSnapshot(Base):
    """The monitor's latest snapshot per window, where Redis is not configured."""

    __tablename__ = "monitor_snapshots"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PipelineReport(Base):
    """A stored pipeline performance report (the result of a ``report`` job)."""

    __tablename__ = "pipeline_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ExperimentDefinition(Base):
    """An experiment serving takes part in: its variants and traffic split, and its lifecycle
    (draft, running, stopped). Its analyses are ``experiment_analyses`` rows of the same name."""

    __tablename__ = "experiments"
    # At most one experiment runs at a time, so a request has one assignment. A partial unique
    # index holds it even when two starts race: the second one's commit fails.
    __table_args__ = (
        Index(
            "uq_experiments_one_running",
            "status",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), index=True, default="draft")
    # [{"name": "A", "weight": 50.0, "model_version": "v3", "strategy": null}, ...]
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CatalogueItem(Base):
    """An item of the catalogue: its title and categories win over the model artifact's item
    metadata, and a hidden item is never served."""

    __tablename__ = "items"

    item_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str | None] = mapped_column(String(500))
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    hidden: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, index=True
    )
