"""Live monitoring over HTTP: window summaries, an SSE stream, alerts, /metrics and the page."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from backend.api.deps import SessionDep, SettingsDep
from backend.api.params import DB_INT_MAX
from backend.api.responses import errors
from backend.api.shutdown import Shutdown
from backend.monitoring import prometheus, service
from backend.monitoring.schemas import AlertPage, StatusOut, SummaryOut
from backend.monitoring.service import NO_SNAPSHOT, freshness
from backend.monitoring.snapshots import SnapshotStore, store_for
from backend.streaming.events import now_ms

log = logging.getLogger(__name__)
router = APIRouter(prefix="/monitoring", tags=["monitoring"])
root_router = APIRouter(tags=["monitoring"])

STATIC = Path(__file__).resolve().parents[2] / "monitoring" / "static"

Window = Literal["1m", "5m", "1h"]


def get_store(request: Request) -> SnapshotStore:
    """The snapshot store of this app (``app.state.monitor_store``; built from the settings)."""
    store: SnapshotStore | None = getattr(request.app.state, "monitor_store", None)
    if store is None:
        store = store_for(request.app.state.settings)
        request.app.state.monitor_store = store
    return store


@router.get(
    "/summary",
    response_model=SummaryOut,
    responses=errors(422, 503, s503="no snapshot from the monitor yet, or its store is down"),
)
async def summary(
    request: Request, window: Annotated[Window, Query(description="window span")] = "1m"
) -> SummaryOut:
    """The latest figures of one window (1m, 5m or 1h) with the monitor's state, totals and lag."""
    snap = await asyncio.to_thread(service.latest, get_store(request))
    return service.summary(snap, window, now_ms())


@router.get(
    "/status",
    response_model=StatusOut,
    response_model_exclude_unset=True,  # without a snapshot: ready and reason only
    responses={
        503: {
            "model": StatusOut,
            "description": "the monitor is not ready (reason says why), or its store is down",
        }
    },
)
async def status(request: Request, response: Response) -> StatusOut:
    """Readiness of the monitor: 200 when its snapshot is fresh and it consumes; 503 says why."""
    out = await asyncio.to_thread(service.status, get_store(request))
    if not out.ready:
        response.status_code = 503
    return out


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "server-sent events: snapshot, waiting and end",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def stream(
    request: Request,
    max_s: Annotated[float, Query(gt=0, le=86_400, description="close after this long")] = 3600,
    interval_s: Annotated[float, Query(ge=0.2, le=60)] = 1.0,
) -> StreamingResponse:
    """Server-sent events: the latest snapshot every interval_s (``event: waiting`` without one).

    The stream ends with ``event: end`` after ``max_s`` seconds, or at once when the server is
    stopping; browsers reconnect after 5 s.
    """
    store = get_store(request)
    shutdown: Shutdown = request.app.state.shutdown

    async def events() -> AsyncIterator[bytes]:
        deadline = time.monotonic() + max_s
        yield b"retry: 5000\n\n"
        while time.monotonic() < deadline and not shutdown.stopping:
            if await request.is_disconnected():
                return
            try:
                stopped, snap = await shutdown.unless_stopping(asyncio.to_thread(store.get))
            except Exception as exc:
                log.warning("cannot read the monitor snapshot store: %s", exc)
                body = {"status": "store_error", "error": type(exc).__name__}
                yield b"event: waiting\ndata: " + orjson.dumps(body) + b"\n\n"
            else:
                if stopped:
                    break
                if snap is None:
                    body = {"status": "no_snapshot", "error": NO_SNAPSHOT}
                    yield b"event: waiting\ndata: " + orjson.dumps(body) + b"\n\n"
                else:
                    snap = {**snap, **freshness(snap, now_ms())}
                    yield b"event: snapshot\ndata: " + orjson.dumps(snap) + b"\n\n"
            if await shutdown.sleep(min(interval_s, max(0.0, deadline - time.monotonic()))):
                break
        if shutdown.stopping:
            yield b'event: end\ndata: {"status": "server shutting down"}\n\n'
        else:
            yield b'event: end\ndata: {"status": "max_s reached"}\n\n'

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/alerts", response_model=AlertPage)
def alerts(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_id: Annotated[
        int | None, Query(ge=1, le=DB_INT_MAX, description="page: ids below this")
    ] = None,
    open_only: bool = False,
) -> AlertPage:
    """Alerts newest first; pass next_before_id back as before_id for the next page."""
    return service.alert_page(session, limit=limit, before_id=before_id, open_only=open_only)


@root_router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus metrics: requests, job counts by state, the monitor's lag, rates and CTR."""
    try:
        snap = await asyncio.to_thread(get_store(request).get)
    except Exception as exc:  # the metrics still carry requests and jobs; up=0 says the rest
        log.warning("metrics: snapshot store unreadable: %s", exc)
        snap = None
    body = await asyncio.to_thread(prometheus.render, settings.sqlalchemy_url, snap, now_ms())
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@root_router.get("/monitor", response_class=HTMLResponse)
def monitor_page() -> HTMLResponse:
    """The live monitoring page (plain HTML and JavaScript, fed by the SSE stream)."""
    return HTMLResponse((STATIC / "monitor.html").read_text(encoding="utf-8"))


@root_router.get("/monitor/monitor.js", include_in_schema=False)
def monitor_js() -> Response:
    """The monitoring page's script."""
    return Response(
        (STATIC / "monitor.js").read_text(encoding="utf-8"), media_type="text/javascript"
    )
