"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from backend import catalog
from backend.api import auth, docs, errors
from backend.api.middleware import BodyGuard
from backend.api.responses import document_errors
from backend.api.routes import (
    events,
    experiments,
    feedback,
    health,
    items,
    jobs,
    models,
    monitoring,
    recommendations,
    reports,
)
from backend.api.shutdown import Shutdown
from backend.config import Settings, get_settings
from backend.feedback.service import publisher_from_settings
from backend.jobs.queue import make_celery
from backend.jobs.supervisor import Supervisor
from backend.monitoring.prometheus import PrometheusMiddleware
from backend.serving import impressions
from backend.serving.state import ModelHolder

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.ensure_dirs()
    catalog.install()  # the job kinds this API accepts
    holder = ModelHolder(settings.sqlalchemy_url, settings.serving_refresh_s)
    shown = impressions.from_settings(settings)  # None when impression logging is off
    feedback_sink = publisher_from_settings(settings)  # one per process, shared by requests
    shutdown = Shutdown()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        shutdown.install()  # a stop signal ends the SSE streams at once
        holder.start()
        if shown is not None:
            shown.start()
        await feedback_sink.start()  # a broker that is down is retried by the next request
        supervisor = Supervisor(settings, app.state.celery, name="API supervisor")  # lost jobs
        supervisor.start()
        # Start-up objects (the app, the model) are long-lived: moving them out of the garbage
        # collector's generations keeps its pauses, and so the serving p99, short.
        gc.freeze()
        yield
        shutdown.uninstall()
        supervisor.stop()
        holder.stop()
        if shown is not None:  # flush what was shown, within the shutdown bound
            shown.close(timeout_s=settings.shutdown_timeout_s)
        await feedback_sink.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="Recflow",
        version="0.1.0",
        docs_url=None,  # backend/api/docs.py serves /docs and /redoc: they can send a key
        redoc_url=None,
        description=(
            "Recommendation pipelines as jobs: ingest events into a Parquet lake, train and "
            "validate SVD models, analyse A/B tests, and serve recommendations."
        ),
    )
    app.state.settings = settings
    app.state.celery = make_celery(settings)
    app.state.models = holder
    app.state.impressions = shown
    app.state.feedback = feedback_sink
    app.state.shutdown = shutdown
    errors.install(app)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    # Keys (when configured) are checked before anything reads a body; inside Prometheus, so
    # refused requests are counted too.
    auth.install(app, settings.api_key_scopes(), metrics_public=settings.metrics_public)
    app.add_middleware(PrometheusMiddleware)  # outermost: counts every request, 4xx included

    # The serving routes are mounted on the app itself, ahead of everything else: routes are
    # matched in order, nested routers cost a match per level, and these are the hot path.
    app.include_router(recommendations.router, prefix=API_PREFIX)
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(jobs.router)
    api.include_router(experiments.router)
    api.include_router(models.router)
    api.include_router(reports.router)
    api.include_router(monitoring.router)
    api.include_router(events.router)
    api.include_router(feedback.router)
    api.include_router(items.router)
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(monitoring.root_router)
    docs.install(app)
    document_errors(app)  # after every route: each one documents the errors it can answer
    logging.getLogger(__name__).info("Recflow API ready (env=%s)", settings.env)
    return app
