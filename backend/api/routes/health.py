"""Liveness and readiness."""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from backend.api.deps import CeleryDep, SettingsDep
from backend.db.session import get_engine
from backend.serving.state import ModelHolder

router = APIRouter(prefix="/health", tags=["health"])
# Exception texts of database and broker drivers can name hosts, users or URLs: they go to the
# log, and a response says only which dependency failed.
log = logging.getLogger(__name__)


class LiveOut(BaseModel):
    status: Literal["ok"]


class CheckOut(BaseModel):
    ok: bool
    ms: float | None = Field(default=None, description="how long the check took")
    error: str | None = Field(default=None, description="why the check failed")
    version: str | None = Field(default=None, description="model: the active version, if any")


class ReadyOut(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, CheckOut] = Field(description="database, broker and the active model")


@router.get("/live", response_model=LiveOut)
def live() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


def _check_db(url: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("readiness: the database is unreachable: %s", exc)
        return {"ok": False, "error": f"{type(exc).__name__}: the database did not answer"}
    return {"ok": True, "ms": round((time.perf_counter() - t0) * 1000, 2)}


def _check_broker(celery: Any, timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        log.warning("readiness: the broker is unreachable: %s", exc)
        return {"ok": False, "error": f"{type(exc).__name__}: the broker did not answer"}
    return {"ok": True, "ms": round((time.perf_counter() - t0) * 1000, 2)}


def _check_model(holder: ModelHolder) -> dict[str, Any]:
    """The active model is loaded, or there is none yet (a fresh install is ready)."""
    failed = holder.failed
    if failed is not None:
        return {"ok": False, "version": failed[1], "error": failed[2]}
    current = holder.current
    return {"ok": True, "version": None if current is None else current.version}


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={
        503: {
            "model": ReadyOut,
            "description": "a dependency is down, or the active model cannot be loaded",
        }
    },
)
def ready(request: Request, settings: SettingsDep, celery: CeleryDep) -> JSONResponse:
    """The database and the broker answer and the active model is loaded; 503 names what is not."""
    checks = {
        "database": _check_db(settings.sqlalchemy_url),
        "broker": _check_broker(celery, settings.broker_connect_timeout_s),
        "model": _check_model(request.app.state.models),
    }
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks},
        status_code=200 if ok else 503,
    )
