"""A/B experiments: analyse (as a job), read the latest analysis and its history, plan sizes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from celery import Celery
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from backend.abtest import plan_sample_size
from backend.api.deps import CeleryDep, SessionDep, SettingsDep
from backend.api.params import IdPath
from backend.api.responses import errors
from backend.config import Settings
from backend.errors import InvalidInputError, NotFoundError
from backend.experiments import repository
from backend.experiments.schemas import (
    AnalysisOut,
    ExperimentListOut,
    SampleSizeOut,
)
from backend.jobs import service
from backend.jobs.schemas import JobOut

router = APIRouter(prefix="/experiments", tags=["experiments"])

ExperimentName = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}$", description="experiment name")
]


class AnalyzeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    unit: str = Field(default="user", description="user (default) or impression")
    control: str | None = None
    alpha: float = 0.05
    power: float = 0.8
    expected_split: dict[str, float] | None = None
    yates: bool = False
    fisher: bool = False
    prior: tuple[float, float] = (1.0, 1.0)
    mc_samples: int = 0
    seed: int | None = 0


def _submit(
    session: Any,
    celery: Any,
    response: Response,
    params: dict[str, Any],
    settings: Settings | None = None,
) -> JobOut:
    job, _ = service.submit(session, celery, "abtest", params, None, settings=settings)
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return service.to_out(job)


@router.get("/sample-size", response_model=SampleSizeOut)
def sample_size(
    baseline_ctr: Annotated[float, Query(gt=0, lt=1, description="control CTR, e.g. 0.05")],
    mde_abs: Annotated[float | None, Query(gt=0, lt=1, description="absolute lift")] = None,
    mde_rel: Annotated[float | None, Query(gt=0, description="relative lift, 0.1 = +10%")] = None,
    alpha: Annotated[float, Query(gt=0, lt=0.5)] = 0.05,
    power: Annotated[float, Query(gt=0, lt=1)] = 0.8,
    ratio: Annotated[float, Query(gt=0, le=100)] = 1.0,
    n_variants: Annotated[int, Query(ge=2, le=50)] = 2,
) -> dict[str, Any]:
    """Units per variant needed to detect a lift (give mde_abs or mde_rel)."""
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
    return plan.to_dict()


@router.get("", response_model=ExperimentListOut)
def list_experiments(session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """Experiments seen in the lake or analysed before, with their latest verdict."""
    analysed = {name: (n, last) for name, n, last in repository.summaries(session)}
    in_lake: list[str] = []
    try:
        from backend.lake.readers import list_experiments as lake_experiments

        in_lake = list(lake_experiments(settings.lake_dir))
    except (ImportError, ValueError, OSError):
        in_lake = []
    items = []
    for name in sorted(set(analysed) | set(in_lake)):
        n, last = analysed.get(name, (0, None))
        latest = repository.get(session, last) if last else None
        items.append(
            {
                "experiment": name,
                "in_lake": name in in_lake,
                "analyses": n,
                "latest": None
                if latest is None
                else {
                    "id": latest.id,
                    "created_at": latest.created_at,
                    "status": latest.status,
                    "verdict": latest.verdict,
                },
            }
        )
    return {"items": items}


@router.post(
    "/{name}/analyze",
    status_code=202,
    response_model=JobOut,
    responses=errors(503, s503="the broker is down: the job is marked failed"),
)
def analyze_experiment(
    name: ExperimentName,
    response: Response,
    session: SessionDep,
    celery: CeleryDep,
    body: AnalyzeRequest | None = None,
) -> JobOut:
    """Analyse the experiment's impressions and clicks from the lake, as an abtest job."""
    params = {"experiment": name, "source": "lake", **(body or AnalyzeRequest()).model_dump()}
    return _submit(session, celery, response, params)


@router.post(
    "/{name}/upload",
    status_code=202,
    response_model=JobOut,
    responses=errors(503, s503="the broker is down: the job is marked failed"),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "the CSV file (UTF-8)",
        }
    },
)
async def upload_csv(
    name: ExperimentName,
    request: Request,
    response: Response,
    session: SessionDep,
    celery: CeleryDep,
    settings: SettingsDep,
    unit: Annotated[str, Query(pattern="^(user|impression)$")] = "user",
    control: str | None = None,
) -> JobOut:
    """Analyse an uploaded CSV (user,variant,impressions,clicks or user,variant,type rows)."""
    body = await request.body()
    if not body.strip():
        raise InvalidInputError("the upload is empty; send the CSV file as the request body")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("the upload is not UTF-8 text; send a CSV file") from None
    # Writing the file, checking it and sending the job block: off the event loop, so the
    # serving routes of this process keep answering meanwhile.
    return await run_in_threadpool(
        _store_and_submit, name, body, unit, control, session, celery, response, settings
    )


def _store_and_submit(
    name: str,
    body: bytes,
    unit: str,
    control: str | None,
    session: Session,
    celery: Celery,
    response: Response,
    settings: Settings,
) -> JobOut:
    # The server names the file, inside the uploads dir (an allowed root); the job names it by
    # that name alone, so no server path reaches the job's params.
    uploads = settings.uploads_dir
    uploads.mkdir(parents=True, exist_ok=True)
    path = uploads / f"{name}-{uuid.uuid4().hex}.csv"
    path.write_bytes(body)
    params: dict[str, Any] = {
        "experiment": name,
        "source": "csv",
        "upload": path.name,
        "unit": unit,
    }
    if control:
        params["control"] = control
    try:
        return _submit(session, celery, response, params, settings)
    except InvalidInputError:
        path.unlink(missing_ok=True)  # refused (e.g. an unknown control): keep no orphan upload
        raise


@router.get(
    "/{name}/analysis",
    response_model=AnalysisOut,
    responses=errors(404, s404="the experiment has no analysis yet"),
)
def get_analysis(
    name: ExperimentName,
    session: SessionDep,
    history: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    """The latest stored analysis of the experiment, and its history (newest first)."""
    rows = repository.history(session, name, history)
    if not rows:
        raise NotFoundError(
            f"experiment {name!r} has no analysis yet; POST /api/v1/experiments/{name}/analyze"
        )
    latest = rows[0]
    return {
        "experiment": name,
        "latest": {
            "id": latest.id,
            "job_id": latest.job_id,
            "created_at": latest.created_at,
            "source": latest.source,
            "chart": f"/api/v1/experiments/{name}/analyses/{latest.id}/chart.png",
            **latest.result,
        },
        "history": [
            {
                "id": r.id,
                "job_id": r.job_id,
                "created_at": r.created_at,
                "source": r.source,
                "unit": r.unit,
                "status": r.status,
                "verdict": r.verdict,
            }
            for r in rows
        ],
    }


@router.get(
    "/{name}/analyses/{analysis_id}/chart.png",
    response_class=Response,
    responses={
        200: {
            "description": "the chart",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        },
        **errors(404, s404="no such analysis of this experiment, or it has no chart"),
    },
)
def chart(name: ExperimentName, analysis_id: IdPath, session: SessionDep) -> Response:
    """The CTR-per-variant chart (Wilson intervals) of one analysis."""
    row = repository.get(session, analysis_id)
    if row is None or row.experiment != name:
        raise NotFoundError(f"analysis {analysis_id} of experiment {name!r} not found")
    if not row.chart_png:
        raise NotFoundError(f"analysis {analysis_id} was stored without a chart")
    return Response(row.chart_png, media_type="image/png")
