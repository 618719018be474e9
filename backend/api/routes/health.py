"""Liveness and readiness."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from fastapi import APIRouter, Request, Response

from backend.api.deps import CeleryDep, SettingsDep
from backend.api.schemas import CheckOut, LiveOut, ReadyOut
from backend.db.session import ping as ping_database
from backend.jobs.queue import ping as ping_broker
from backend.serving.state import ModelHolder

router = APIRouter(prefix="/health", tags=["health"])
# Exception texts of database and broker drivers can name hosts, users or URLs: they go to the
# log, and a response says only which dependency failed.
log = logging.getLogger(__name__)


@router.get("/live", response_model=LiveOut)
def live() -> LiveOut:
    """The process is up."""
    return LiveOut(status="ok")


def _timed(what: str, check: Callable[[], None]) -> CheckOut:
    t0 = time.perf_counter()
    try:
        check()
    except Exception as exc:
        log.warning("readiness: %s is unreachable: %s", what, exc)
        return CheckOut(ok=False, error=f"{type(exc).__name__}: {what} did not answer")
    return CheckOut(ok=True, ms=round((time.perf_counter() - t0) * 1000, 2))


def _check_model(holder: ModelHolder) -> CheckOut:
    """The active model is loaded, or there is none yet (a fresh install is ready)."""
    failed = holder.failed
    if failed is not None:
        return CheckOut(ok=False, version=failed[1], error=failed[2])
    current = holder.current
    return CheckOut(ok=True, version=None if current is None else current.version)


@router.get(
    "/ready",
    response_model=ReadyOut,
    response_model_exclude_unset=True,  # each check sends only the fields that apply to it
    responses={
        503: {
            "model": ReadyOut,
            "description": "a dependency is down, or the active model cannot be loaded",
        }
    },
)
def ready(
    request: Request, response: Response, settings: SettingsDep, celery: CeleryDep
) -> ReadyOut:
    """The database and the broker answer and the active model is loaded; 503 names what is not."""
    checks = {
        "database": _timed("the database", lambda: ping_database(settings.sqlalchemy_url)),
        "broker": _timed(
            "the broker", lambda: ping_broker(celery, settings.broker_connect_timeout_s)
        ),
        "model": _check_model(request.app.state.models),
    }
    ok = all(c.ok for c in checks.values())
    if not ok:
        response.status_code = 503
    return ReadyOut(status="ready" if ok else "not ready", checks=checks)
