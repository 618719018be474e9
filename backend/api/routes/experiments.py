"""A/B experiments: define, start and stop them (serving assigns users to the running one),
analyse (as a job), read the latest analysis and its history, plan sizes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from backend.api.deps import CeleryDep, SessionDep, SettingsDep
from backend.api.params import IdPath
from backend.api.responses import errors
from backend.experiments import definitions, service
from backend.experiments.schemas import (
    AnalysisOut,
    ExperimentIn,
    ExperimentListOut,
    ExperimentOut,
    SampleSizeOut,
)
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


def _located(job: JobOut, response: Response) -> JobOut:
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return job


@router.get("/sample-size", response_model=SampleSizeOut)
def sample_size(
    baseline_ctr: Annotated[float, Query(gt=0, lt=1, description="control CTR, e.g. 0.05")],
    mde_abs: Annotated[float | None, Query(gt=0, lt=1, description="absolute lift")] = None,
    mde_rel: Annotated[float | None, Query(gt=0, description="relative lift, 0.1 = +10%")] = None,
    alpha: Annotated[float, Query(gt=0, lt=0.5)] = 0.05,
    power: Annotated[float, Query(gt=0, lt=1)] = 0.8,
    ratio: Annotated[float, Query(gt=0, le=100)] = 1.0,
    n_variants: Annotated[int, Query(ge=2, le=50)] = 2,
) -> SampleSizeOut:
    """Units per variant needed to detect a lift (give mde_abs or mde_rel)."""
    return service.sample_size(
        baseline_ctr,
        mde_abs=mde_abs,
        mde_rel=mde_rel,
        alpha=alpha,
        power=power,
        ratio=ratio,
        n_variants=n_variants,
    )


@router.get("", response_model=ExperimentListOut)
def list_experiments(session: SessionDep, settings: SettingsDep) -> ExperimentListOut:
    """Experiments defined, seen in the lake or analysed, with definition and latest verdict."""
    return service.list_experiments(session, settings.lake_dir)


@router.post(
    "",
    status_code=201,
    response_model=ExperimentOut,
    responses=errors(409, s409="an experiment of this name exists"),
)
def create_experiment(body: ExperimentIn, response: Response, session: SessionDep) -> ExperimentOut:
    """Define an experiment (draft): variants with weights, each a model version or `popular`."""
    out = definitions.create(session, body)
    response.headers["Location"] = f"/api/v1/experiments/{out.name}"
    return out


@router.get(
    "/{name}",
    response_model=ExperimentOut,
    responses=errors(404, s404="the experiment is not defined"),
)
def get_experiment(name: ExperimentName, session: SessionDep) -> ExperimentOut:
    """The experiment's definition: variants, split, status and its timestamps."""
    return definitions.get(session, name)


@router.post(
    "/{name}/start",
    response_model=ExperimentOut,
    responses=errors(
        404, 409, s404="the experiment is not defined", s409="not a draft, or another runs"
    ),
)
def start_experiment(name: ExperimentName, session: SessionDep) -> ExperimentOut:
    """Start a draft experiment: serving assigns users to its variants within seconds."""
    return definitions.start(session, name)


@router.post(
    "/{name}/stop",
    response_model=ExperimentOut,
    responses=errors(404, 409, s404="the experiment is not defined", s409="it is not running"),
)
def stop_experiment(name: ExperimentName, session: SessionDep) -> ExperimentOut:
    """Stop a running experiment: everyone gets the active model again."""
    return definitions.stop(session, name)


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
    options = (body or AnalyzeRequest()).model_dump()
    return _located(service.analyze(session, celery, name, options), response)


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
    metric: Annotated[
        str | None, Query(description="ctr (default), click_users, clicks, views, purchases, value")
    ] = None,
    guardrail: Annotated[
        list[str] | None, Query(description="a metric checked for no significant harm; repeat")
    ] = None,
    cuped: Annotated[bool | None, Query(description="adjust with the CSV's pre_* columns")] = None,
    sequential: Annotated[bool | None, Query(description="always-valid p-values")] = None,
    n_star: Annotated[float | None, Query(gt=0, description="users at which to decide")] = None,
) -> JobOut:
    """Analyse an uploaded CSV (user,variant,impressions,clicks or user,variant,type rows)."""
    options = {
        "metric": metric,
        "guardrails": guardrail,
        "cuped": cuped,
        "sequential": sequential,
        "n_star": n_star,
    }
    body = await request.body()
    # Checking and writing the file and sending the job block: off the event loop, so the
    # serving routes of this process keep answering meanwhile.
    job = await run_in_threadpool(
        service.analyze_upload,
        session,
        celery,
        settings,
        name,
        body,
        unit=unit,
        control=control,
        options={k: v for k, v in options.items() if v is not None},
    )
    return _located(job, response)


@router.get(
    "/{name}/analysis",
    response_model=AnalysisOut,
    responses=errors(404, s404="the experiment has no analysis yet"),
)
def get_analysis(
    name: ExperimentName,
    session: SessionDep,
    history: Annotated[int, Query(ge=1, le=500)] = 20,
) -> AnalysisOut:
    """The latest stored analysis of the experiment, and its history (newest first)."""
    return service.analysis(session, name, history)


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
    return Response(service.chart(session, name, analysis_id), media_type="image/png")
