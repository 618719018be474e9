"""All SQL of pipeline reports: the run selection, the per-stage aggregates, stored reports.

Both dialects run the same selection and GROUP BY. PostgreSQL also computes the percentiles
(``percentile_cont``, linear interpolation) and ``stddev_samp``; on SQLite, which has neither,
the standard deviation is a two-pass GROUP BY (sum of squared deviations from the group mean)
and the percentiles are computed in Python from the selected durations (``stats.percentile``,
the same definition).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CTE, Select, Text, and_, case, cast, func, select
from sqlalchemy.orm import Session

from backend.db.tables import Job, JobStage, PipelineReport
from backend.reports.params import PipelineReportParams

TERMINAL = ("succeeded", "failed", "cancelled")


def _rows(session: Session, stmt: Select[Any]) -> Any:
    # Core execution on the session's connection: plain tuples, without the ORM's row loading.
    return session.connection().execute(stmt)


QUANTILES = (0.25, 0.5, 0.75, 0.95)


@contextmanager
def snapshot(session: Session) -> Iterator[str]:
    """Run the report's statements against one committed snapshot; yields the dialect name.

    PostgreSQL: a READ ONLY, REPEATABLE READ transaction, so every statement sees the same
    committed rows even while workers keep finishing jobs. SQLite (WAL): an explicit deferred
    BEGIN, so the reads share one snapshot (pysqlite would otherwise run each SELECT on its
    own). Must be the session's first use in its transaction.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
    elif dialect == "sqlite":
        conn = session.connection()
        dbapi = conn.connection.dbapi_connection
        if dbapi is not None and not getattr(dbapi, "in_transaction", False):
            conn.exec_driver_sql("BEGIN")
    yield dialect


def runs_cte(p: PipelineReportParams) -> CTE:
    """The selected runs: the ``last`` most recent matching jobs of each kind.

    Columns: job_id, kind, state, attempts, started_at, rn (1 = newest of its kind), matching
    (how many jobs of the kind match before ``last`` is applied).
    """
    order = (Job.started_at.desc(), Job.id.desc())
    inner = select(
        Job.id.label("job_id"),
        Job.kind.label("kind"),
        Job.state.label("state"),
        Job.attempts.label("attempts"),
        Job.started_at.label("started_at"),
        func.row_number().over(partition_by=Job.kind, order_by=order).label("rn"),
        func.count().over(partition_by=Job.kind).label("matching"),
    ).where(Job.started_at.is_not(None), Job.attempts > 0)
    if p.state == "any":
        inner = inner.where(Job.state.in_(TERMINAL))
    else:
        inner = inner.where(Job.state == p.state)
    if p.kind is not None:
        inner = inner.where(Job.kind == p.kind)
    if p.since is not None:
        inner = inner.where(Job.started_at >= p.since)
    if p.until is not None:
        inner = inner.where(Job.started_at < p.until)
    sub = inner.subquery("matching_runs")
    return select(sub).where(sub.c.rn <= p.last).cte("runs")


def _stage_join(runs: CTE) -> Any:
    # Only the stages of the latest attempt of each job, and only those that finished.
    return and_(
        JobStage.job_id == runs.c.job_id,
        JobStage.attempt == runs.c.attempts,
        JobStage.duration_s.is_not(None),
    )


@dataclass(frozen=True)
class RunRow:
    job_id: int
    kind: str
    state: str
    started_at: datetime
    matching: int


def selected_runs(session: Session, runs: CTE) -> list[RunRow]:
    """Every selected run, oldest first within each kind."""
    stmt = select(
        runs.c.job_id, runs.c.kind, runs.c.state, runs.c.started_at, runs.c.matching
    ).order_by(runs.c.kind, runs.c.started_at, runs.c.job_id)
    return [RunRow(int(r[0]), r[1], r[2], r[3], int(r[4])) for r in _rows(session, stmt)]


@dataclass(frozen=True)
class StageAggregate:
    """GROUP BY (kind, stage) figures. Quantiles and std are None where SQL did not give them."""

    kind: str
    stage: str
    samples: int
    runs: int
    mean_s: float
    min_s: float
    max_s: float
    total_s: float
    std_s: float | None
    quantiles: dict[float, float] | None
    rows_in: int | None
    rows_out: int | None
    rows_in_duration_s: float
    rows_out_duration_s: float
    first_seen: int


def _aggregate_stmt(runs: CTE, dialect: str) -> Select[Any]:
    d = JobStage.duration_s
    cols: list[Any] = [
        runs.c.kind,
        JobStage.name,
        func.count(),
        func.count(func.distinct(JobStage.job_id)),
        func.avg(d),
        func.min(d),
        func.max(d),
        func.sum(d),
        func.sum(JobStage.rows_in),
        func.sum(JobStage.rows_out),
        func.coalesce(func.sum(case((JobStage.rows_in.is_not(None), d), else_=0.0)), 0.0),
        func.coalesce(func.sum(case((JobStage.rows_out.is_not(None), d), else_=0.0)), 0.0),
        func.min(JobStage.id),
    ]
    if dialect == "postgresql":
        cols.append(func.stddev_samp(d))
        cols += [func.percentile_cont(q).within_group(d) for q in QUANTILES]
    return (
        select(*cols)
        .select_from(runs)
        .join(JobStage, _stage_join(runs))
        .group_by(runs.c.kind, JobStage.name)
    )


def _sqlite_std(session: Session, runs: CTE) -> dict[tuple[str, str], float | None]:
    """Sample std per (kind, stage) as a two-pass GROUP BY: sqrt(sum((d - mean)^2) / (n - 1))."""
    means = (
        select(
            runs.c.kind.label("kind"),
            JobStage.name.label("stage"),
            func.avg(JobStage.duration_s).label("mean"),
            func.count().label("n"),
        )
        .select_from(runs)
        .join(JobStage, _stage_join(runs))
        .group_by(runs.c.kind, JobStage.name)
        .subquery("means")
    )
    dev = JobStage.duration_s - means.c.mean
    stmt = (
        select(means.c.kind, means.c.stage, func.sum(dev * dev), means.c.n)
        .select_from(runs)
        .join(JobStage, _stage_join(runs))
        .join(means, and_(means.c.kind == runs.c.kind, means.c.stage == JobStage.name))
        .group_by(means.c.kind, means.c.stage, means.c.n)
    )
    out: dict[tuple[str, str], float | None] = {}
    for kind, stage, ss, n in _rows(session, stmt):
        out[(kind, stage)] = None if n < 2 else (max(float(ss), 0.0) / (n - 1)) ** 0.5
    return out


def stage_aggregates(session: Session, runs: CTE, dialect: str) -> list[StageAggregate]:
    """Per (kind, stage): count, distinct runs, mean, min, max, sum, std, rows, quantiles (PG)."""
    rows = _rows(session, _aggregate_stmt(runs, dialect)).all()
    std_sqlite = _sqlite_std(session, runs) if dialect != "postgresql" and rows else {}
    out = []
    for r in rows:
        kind, stage = r[0], r[1]
        if dialect == "postgresql":
            std = None if r[13] is None else float(r[13])
            quantiles: dict[float, float] | None = {
                q: float(v) for q, v in zip(QUANTILES, r[14:18], strict=True)
            }
        else:
            std = std_sqlite.get((kind, stage))
            quantiles = None
        out.append(
            StageAggregate(
                kind=kind,
                stage=stage,
                samples=int(r[2]),
                runs=int(r[3]),
                mean_s=float(r[4]),
                min_s=float(r[5]),
                max_s=float(r[6]),
                total_s=float(r[7]),
                std_s=std,
                quantiles=quantiles,
                rows_in=None if r[8] is None else int(r[8]),
                rows_out=None if r[9] is None else int(r[9]),
                rows_in_duration_s=float(r[10]),
                rows_out_duration_s=float(r[11]),
                first_seen=int(r[12]),
            )
        )
    return out


@dataclass(frozen=True)
class StageRow:
    job_id: int
    kind: str
    stage: str
    duration_s: float
    extra: dict[str, Any]


def stage_rows(session: Session, runs: CTE) -> list[StageRow]:
    """Every selected stage row, in run order (oldest first), for trends, regressions, charts."""
    # extra comes as text and is parsed only when not empty: most stages record nothing, and
    # decoding thousands of "{}" costs more than the query.
    stmt = (
        select(
            runs.c.job_id,
            runs.c.kind,
            JobStage.name,
            JobStage.duration_s,
            cast(JobStage.extra, Text),
        )
        .select_from(runs)
        .join(JobStage, _stage_join(runs))
        .order_by(runs.c.started_at, runs.c.job_id, JobStage.id)
    )
    out = []
    for job_id, kind, name, duration, extra in _rows(session, stmt):
        parsed = json.loads(extra) if extra and extra not in ("{}", "null") else {}
        out.append(
            StageRow(
                job_id, kind, name, float(duration), parsed if isinstance(parsed, dict) else {}
            )
        )
    return out


def slowest_runs(session: Session, runs: CTE, limit: int) -> list[tuple[int, float]]:
    """(job_id, total seconds over its stages) of the ``limit`` slowest selected runs."""
    if limit <= 0:
        return []
    total = func.sum(JobStage.duration_s).label("total")
    stmt = (
        select(runs.c.job_id, total)
        .select_from(runs)
        .join(JobStage, _stage_join(runs))
        .group_by(runs.c.job_id)
        .order_by(total.desc(), runs.c.job_id.desc())
        .limit(limit)
    )
    return [(int(j), float(t)) for j, t in _rows(session, stmt)]


def add(
    session: Session, *, job_id: int | None, params: dict[str, Any], result: dict[str, Any]
) -> PipelineReport:
    """Store a report. Flushes only; the session's owner commits."""
    row = PipelineReport(job_id=job_id, params=params, result=result)
    session.add(row)
    session.flush()
    return row


def get(session: Session, report_id: int) -> PipelineReport | None:
    return session.get(PipelineReport, report_id)


def latest(session: Session) -> PipelineReport | None:
    stmt = select(PipelineReport).order_by(PipelineReport.id.desc()).limit(1)
    return session.scalars(stmt).one_or_none()


def recent(session: Session, limit: int) -> Sequence[PipelineReport]:
    stmt = select(PipelineReport).order_by(PipelineReport.id.desc()).limit(limit)
    return session.scalars(stmt).all()
