"""Liveness and readiness."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from backend.api.deps import CeleryDep, SettingsDep
from backend.db.session import get_engine

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
def live() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


def _check_db(url: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    return {"ok": True, "ms": round((time.perf_counter() - t0) * 1000, 2)}


def _check_broker(celery: Any, timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {"ok": True, "ms": round((time.perf_counter() - t0) * 1000, 2)}


@router.get("/ready", responses={503: {"description": "a dependency is down"}})
def ready(settings: SettingsDep, celery: CeleryDep) -> JSONResponse:
    """The database and the broker answer; 503 names the one that does not."""
    checks = {
        "database": _check_db(settings.sqlalchemy_url),
        "broker": _check_broker(celery, settings.broker_connect_timeout_s),
    }
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks},
        status_code=200 if ok else 503,
    )
