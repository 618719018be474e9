"""The model registry: versions with their metrics, and which one serves traffic."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from backend.api.deps import SessionDep
from backend.api.params import IdPath, IdQuery
from backend.api.responses import errors
from backend.registry import service
from backend.registry.schemas import MetricPage, ModelOut, ModelPage

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelPage)
def list_models(session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> ModelPage:
    """Model versions, newest first, with their metrics and which one is active."""
    return service.list_models(session, limit)


@router.get("/models/{model_id}", response_model=ModelOut, responses=errors(404))
def get_model(model_id: IdPath, session: SessionDep) -> ModelOut:
    """One model version."""
    return service.get_model(session, model_id)


@router.post(
    "/models/{model_id}/activate",
    response_model=ModelOut,
    responses=errors(404, 409, s409="the model's artifact cannot be loaded; the message says why"),
)
def activate_model(model_id: IdPath, session: SessionDep, request: Request) -> ModelOut:
    """Make this version the one that serves recommendations (every API process reloads it)."""
    m = service.activate(session, model_id)
    session.commit()
    request.app.state.models.refresh()  # this process at once; the others within seconds
    return service.model_out(m)


@router.get("/metrics/records", response_model=MetricPage)
def list_metrics(
    session: SessionDep,
    job_id: IdQuery = None,
    model_id: IdQuery = None,
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> MetricPage:
    """Stored metric values: one row per (job, subject, fold, metric); fold null = the mean."""
    return service.metric_records(session, job_id=job_id, model_id=model_id, name=name, limit=limit)
