"""The FastAPI application factory."""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI

from backend.api import errors
from backend.api.middleware import BodyGuard
from backend.api.routes import experiments, health, jobs
from backend.config import Settings, get_settings
from backend.jobs.queue import make_celery

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.ensure_dirs()
    app = FastAPI(
        title="Recflow",
        version="0.1.0",
        description=(
            "Recommendation pipelines as jobs: ingest events into a Parquet lake, train and "
            "validate SVD models, analyse A/B tests, and serve recommendations."
        ),
    )
    app.state.settings = settings
    app.state.celery = make_celery(settings)
    errors.install(app)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(jobs.router)
    api.include_router(experiments.router)
    app.include_router(api)
    app.include_router(health.router)
    logging.getLogger(__name__).info("Recflow API ready (env=%s)", settings.env)
    return app
