"""All SQL for experiments: their definitions and their stored A/B analyses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from backend.db.tables import ExperimentAnalysisRow, ExperimentDefinition


def add(
    session: Session,
    *,
    experiment: str,
    job_id: int | None,
    source: str,
    unit: str,
    result: dict[str, Any],
    chart_png: bytes | None,
) -> ExperimentAnalysisRow:
    row = ExperimentAnalysisRow(
        experiment=experiment,
        job_id=job_id,
        source=source,
        unit=unit,
        status=str(result.get("status", "ok")),
        verdict=str(result.get("verdict", "")),
        result=result,
        chart_png=chart_png,
    )
    session.add(row)
    session.flush()
    return row


def history(session: Session, experiment: str, limit: int) -> Sequence[ExperimentAnalysisRow]:
    stmt = (
        select(ExperimentAnalysisRow)
        .options(defer(ExperimentAnalysisRow.chart_png))
        .where(ExperimentAnalysisRow.experiment == experiment)
        .order_by(ExperimentAnalysisRow.id.desc())
        .limit(limit)
    )
    return session.scalars(stmt).all()


def get(session: Session, analysis_id: int) -> ExperimentAnalysisRow | None:
    return session.get(ExperimentAnalysisRow, analysis_id)


def summaries(session: Session) -> list[tuple[str, int, int]]:
    """(experiment, number of analyses, id of the latest) for every analysed experiment."""
    stmt = (
        select(
            ExperimentAnalysisRow.experiment,
            func.count(ExperimentAnalysisRow.id),
            func.max(ExperimentAnalysisRow.id),
        )
        .group_by(ExperimentAnalysisRow.experiment)
        .order_by(ExperimentAnalysisRow.experiment)
    )
    return [(name, int(n), int(last)) for name, n, last in session.execute(stmt).all()]


def briefs(session: Session, analysis_ids: list[int]) -> dict[int, ExperimentAnalysisRow]:
    """The analyses with these ids, by id, without their charts."""
    if not analysis_ids:
        return {}
    stmt = (
        select(ExperimentAnalysisRow)
        .options(defer(ExperimentAnalysisRow.chart_png))
        .where(ExperimentAnalysisRow.id.in_(analysis_ids))
    )
    return {row.id: row for row in session.scalars(stmt)}


def add_definition(
    session: Session, *, name: str, description: str, variants: list[dict[str, Any]]
) -> ExperimentDefinition:
    row = ExperimentDefinition(
        name=name, description=description, status="draft", variants=variants
    )
    session.add(row)
    session.flush()
    return row


def definition(session: Session, name: str) -> ExperimentDefinition | None:
    stmt = select(ExperimentDefinition).where(ExperimentDefinition.name == name)
    return session.scalars(stmt).one_or_none()


def definitions(session: Session) -> Sequence[ExperimentDefinition]:
    return session.scalars(select(ExperimentDefinition).order_by(ExperimentDefinition.name)).all()


def running(session: Session) -> Sequence[ExperimentDefinition]:
    """The running experiments (at most one: a partial unique index holds it)."""
    stmt = select(ExperimentDefinition).where(ExperimentDefinition.status == "running")
    return session.scalars(stmt).all()
