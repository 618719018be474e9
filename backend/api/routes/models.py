"""The model registry: versions with their metrics, and which one serves traffic."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from backend.api.deps import SessionDep
from backend.api.params import IdPath, IdQuery
from backend.api.responses import errors
from backend.errors import NotFoundError
from backend.registry import repository as repo
from backend.registry import service
from backend.registry.schemas import MetricPage, ModelOut, ModelPage

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelPage)
def list_models(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """Model versions, newest first, with their metrics and which one is active."""
    return {"items": [service.to_dict(m) for m in repo.page(session, limit)]}


@router.get("/models/{model_id}", response_model=ModelOut, responses=errors(404))
def get_model(model_id: IdPath, session: SessionDep) -> dict[str, Any]:
    """One model version."""
    m = repo.get(session, model_id)
    if m is None:
        raise NotFoundError(f"model {model_id} not found")
    return service.to_dict(m)


@router.post(
    "/models/{model_id}/activate",
    response_model=ModelOut,
    responses=errors(404, 409, s409="the model's artifact cannot be loaded; the message says why"),
)
def activate_model(model_id: IdPath, session: SessionDep, request: Request) -> dict[str, Any]:
    """Make this version the one that serves recommendations (every API process reloads it)."""
    m = service.activate(session, model_id)
    session.commit()
    request.app.state.models.refresh()  # this process at once; the others within seconds
    return service.to_dict(m)


@router.get("/metrics/records", response_model=MetricPage)
def list_metrics(
    session: SessionDep,
    job_id: IdQuery = None,
    model_id: IdQuery = None,
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """Stored metric values: one row per (job, subject, fold, metric); fold null = the mean."""
    rows = repo.metrics(session, job_id=job_id, model_id=model_id, name=name, limit=limit)
    return {
        "items": [
            {
                "job_id": r.job_id,
                "model_id": r.model_id,
                "subject": r.subject,
                "fold": r.fold,
                "name": r.name,
                "value": r.value,
            }
            for r in rows
        ]
    }
