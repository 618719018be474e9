"""Experiment rules: which experiments exist, their stored analyses, analysing one (from the lake
or an uploaded CSV, as an abtest job), the control variant, and planning sample sizes."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session

from backend.abtest import plan_sample_size
from backend.config import Settings
from backend.errors import InvalidInputError, NotFoundError
from backend.experiments import definitions, repository
from backend.experiments.schemas import (
    AnalysisBriefOut,
    AnalysisOut,
    ExperimentListOut,
    ExperimentSummaryOut,
    LatestAnalysisOut,
    LatestVerdictOut,
    SampleSizeOut,
)
from backend.jobs import service as jobs
from backend.jobs.schemas import JobOut
from backend.lake import readers

log = logging.getLogger(__name__)

KIND = "abtest"


def choose_control(variants: list[str], control: str | None) -> str:
    """The control variant: the one asked for, else ``control`` when present, else the first
    variant in sorted order."""
    if control is not None:
        return control
    return "control" if "control" in variants else sorted(variants)[0]


def sample_size(
    baseline_ctr: float,
    *,
    mde_abs: float | None,
    mde_rel: float | None,
    alpha: float,
    power: float,
    ratio: float,
    n_variants: int,
) -> SampleSizeOut:
    """Units per variant to detect a lift of ``mde_abs`` (absolute) or ``mde_rel`` (relative,
    exactly one of the two) over ``baseline_ctr``."""
    if (mde_abs is None) == (mde_rel is None):
        raise InvalidInputError("give exactly one of mde_abs (e.g. 0.005) or mde_rel (e.g. 0.1)")
    try:
        plan = plan_sample_size(
            baseline_ctr,
            mde_abs=mde_abs,
            mde_rel=mde_rel,
            alpha=alpha,
            power=power,
            ratio=ratio,
            n_variants=n_variants,
        )
    except (ZeroDivisionError, OverflowError):  # an effect (or ratio) below float precision
        raise InvalidInputError(
            "the effect (or the ratio) is too small to plan for: no finite number of units "
            "detects it; give a larger mde_abs or mde_rel"
        ) from None
    return SampleSizeOut.model_validate(plan, from_attributes=True)


def list_experiments(session: Session, lake_dir: Path) -> ExperimentListOut:
    """Every experiment defined, with events in the lake or analysed, by name, with its
    definition (when defined) and latest verdict."""
    defined = definitions.by_name(session)
    analysed = {name: (n, last) for name, n, last in repository.summaries(session)}
    # An empty (or absent) lake lists no experiment: the reader answers its LakeEmptyError with
    # an empty list. A lake that cannot be read right now (a damaged Parquet file, a file that
    # compaction just replaced) must not hide the analysed experiments: they are listed, and
    # the fault is logged with its cause for the operator.
    try:
        in_lake = set(readers.list_experiments(lake_dir))
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        log.warning("experiments: the lake could not be read (%s: %s)", type(exc).__name__, exc)
        in_lake = set()
    latest = repository.briefs(session, [last for _, last in analysed.values()])
    items = []
    for name in sorted(set(analysed) | in_lake | set(defined)):
        n, last = analysed.get(name, (0, None))
        row = None if last is None else latest.get(last)
        definition = defined.get(name)
        items.append(
            ExperimentSummaryOut(
                experiment=name,
                in_lake=name in in_lake,
                analyses=n,
                latest=None
                if row is None
                else LatestVerdictOut.model_validate(row, from_attributes=True),
                status=None if definition is None else definition.status,
                definition=definition,
            )
        )
    return ExperimentListOut(items=items)


def analysis(session: Session, name: str, history: int) -> AnalysisOut:
    """The latest stored analysis of ``name`` in full, and the ``history`` newest in brief."""
    rows = repository.history(session, name, history)
    if not rows:
        raise NotFoundError(
            f"experiment {name!r} has no analysis yet; POST /api/v1/experiments/{name}/analyze"
        )
    latest = rows[0]
    return AnalysisOut(
        experiment=name,
        latest=LatestAnalysisOut.model_validate(
            {
                "id": latest.id,
                "job_id": latest.job_id,
                "created_at": latest.created_at,
                "source": latest.source,
                "chart": f"/api/v1/experiments/{name}/analyses/{latest.id}/chart.png",
                **latest.result,
            }
        ),
        history=[AnalysisBriefOut.model_validate(r, from_attributes=True) for r in rows],
    )


def chart(session: Session, name: str, analysis_id: int) -> bytes:
    """The PNG chart stored with analysis ``analysis_id`` of experiment ``name``."""
    row = repository.get(session, analysis_id)
    if row is None or row.experiment != name:
        raise NotFoundError(f"analysis {analysis_id} of experiment {name!r} not found")
    if not row.chart_png:
        raise NotFoundError(f"analysis {analysis_id} was stored without a chart")
    return row.chart_png


def store_analysis(
    session: Session,
    *,
    experiment: str,
    job_id: int | None,
    source: str,
    unit: str,
    result: dict[str, Any],
    chart_png: bytes | None,
) -> int:
    """Keep an abtest job's result (and chart) as the newest analysis of ``experiment``; its id."""
    row = repository.add(
        session,
        experiment=experiment,
        job_id=job_id,
        source=source,
        unit=unit,
        result=result,
        chart_png=chart_png,
    )
    return row.id


def analyze(session: Session, celery: Celery, name: str, options: dict[str, Any]) -> JobOut:
    """Submit an abtest job on the lake's events of ``name`` (``options``: the job's params)."""
    params = {"experiment": name, "source": "lake", **options}
    job, _ = jobs.submit(session, celery, KIND, params, None)
    return jobs.to_out(job)


def analyze_upload(
    session: Session,
    celery: Celery,
    settings: Settings,
    name: str,
    body: bytes,
    *,
    unit: str,
    control: str | None,
    options: dict[str, Any] | None = None,
) -> JobOut:
    """Store an uploaded CSV in the uploads dir and submit an abtest job on it.

    ``options`` are more params of the job (metric, guardrails, CUPED, sequential), checked by
    the job's params model like every other.

    The server names the file, inside the uploads dir (an allowed root); the job names it by
    that name alone, so no server path reaches the job's params. A job refused at submit time
    (e.g. an unknown control variant) leaves no upload behind.
    """
    if not body.strip():
        raise InvalidInputError("the upload is empty; send the CSV file as the request body")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("the upload is not UTF-8 text; send a CSV file") from None
    uploads = settings.uploads_dir
    uploads.mkdir(parents=True, exist_ok=True)
    path = uploads / f"{name}-{uuid.uuid4().hex}.csv"
    path.write_bytes(body)
    params: dict[str, Any] = {
        **(options or {}),
        "experiment": name,
        "source": "csv",
        "upload": path.name,
        "unit": unit,
    }
    if control:
        params["control"] = control
    try:
        job, _ = jobs.submit(session, celery, KIND, params, None, settings=settings)
    except InvalidInputError:
        path.unlink(missing_ok=True)
        raise
    return jobs.to_out(job)
