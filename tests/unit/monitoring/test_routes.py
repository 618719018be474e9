"""Monitoring endpoints on a TestClient: summary, status, stream, alerts, metrics, page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from backend.api.app import API_PREFIX, create_app
from backend.api.routes import monitoring
from backend.config import Settings
from backend.monitoring.alert_store import AlertStore
from backend.monitoring.alerts import AlertRules, lag_condition
from backend.monitoring.consumer import Monitor, MonitorOptions, Record
from backend.monitoring.prometheus import PrometheusMiddleware
from backend.monitoring.snapshots import MemorySnapshotStore, SqlSnapshotStore
from backend.streaming.events import now_ms
from tests.unit.monitoring.test_consumer import TP, raw


def mount(settings: Settings) -> Any:
    """The app as the lead wires it: routers under /api/v1 and at the root, plus middleware."""
    app = create_app(settings)
    if not any(getattr(r, "path", "") == "/metrics" for r in app.routes):
        api = APIRouter(prefix=API_PREFIX)
        api.include_router(monitoring.router)
        app.include_router(api)
        app.include_router(monitoring.root_router)
        app.add_middleware(PrometheusMiddleware)
    return app


@pytest.fixture
def store() -> MemorySnapshotStore:
    return MemorySnapshotStore()


@pytest.fixture
def client(settings: Settings, store: MemorySnapshotStore) -> Iterator[TestClient]:
    app = mount(settings)
    app.state.monitor_store = store
    with TestClient(app) as c:
        yield c


def snapshot(at: int | None = None) -> dict[str, Any]:
    at = at or now_ms()
    m = Monitor(MonitorOptions("127.0.0.1:1", topic="t"), MemorySnapshotStore(), clock=lambda: at)
    m.state = "running"
    m.process(
        {
            TP: [
                Record(0, raw(ts=at - 100, type="impression", model_version="als-v1")),
                Record(1, raw(ts=at, model_version="als-v1")),
            ]
        },
        at,
    )
    return m.snapshot(at)


def test_summary_without_a_snapshot_says_so(client: TestClient) -> None:
    r = client.get("/api/v1/monitoring/summary")
    assert r.status_code == 503
    assert "recflow monitor" in r.json()["error"] and r.json()["detail"] == {
        "status": "no_snapshot"
    }
    r = client.get("/api/v1/monitoring/status")
    assert r.status_code == 503 and r.json()["ready"] is False


def test_summary_of_a_window(client: TestClient, store: MemorySnapshotStore) -> None:
    store.put(snapshot())
    r = client.get("/api/v1/monitoring/summary", params={"window": "5m"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["window"] == "5m" and body["events"] == 2 and body["stale"] is False
    assert body["variants"][0]["ctr"] == 1.0 and body["monitor"]["state"] == "running"
    assert body["models"] == [
        {
            "experiment": "home",
            "variant": "A",
            "model_version": "als-v1",
            "impressions": 1,
            "clicks": 1,
            "ctr": 1.0,
        }
    ]
    assert client.get("/api/v1/monitoring/status").status_code == 200
    bad = client.get("/api/v1/monitoring/summary", params={"window": "2m"})
    assert bad.status_code == 422 and "window" in bad.json()["error"]


def test_a_stale_snapshot_is_flagged(client: TestClient, store: MemorySnapshotStore) -> None:
    store.put(snapshot(now_ms() - 60_000))
    assert client.get("/api/v1/monitoring/summary").json()["stale"] is True
    r = client.get("/api/v1/monitoring/status")
    assert r.status_code == 503 and "not running" in r.json()["reason"]


def test_stream_sends_snapshots_and_ends(client: TestClient, store: MemorySnapshotStore) -> None:
    r = client.get("/api/v1/monitoring/stream", params={"max_s": 0.5, "interval_s": 0.2})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert "event: waiting" in r.text and r.text.rstrip().endswith('{"status": "max_s reached"}')
    store.put(snapshot())
    r = client.get("/api/v1/monitoring/stream", params={"max_s": 0.5, "interval_s": 0.2})
    assert r.text.count("event: snapshot") >= 2


def test_alerts_are_listed_newest_first_in_pages(client: TestClient, settings: Settings) -> None:
    alerts = AlertStore(settings.sqlalchemy_url)
    ids = [alerts.fire(lag_condition(f"t{i}", 99_999, AlertRules())) for i in range(3)]
    alerts.resolve(ids[0])
    page = client.get("/api/v1/monitoring/alerts", params={"limit": 2}).json()
    assert [a["id"] for a in page["items"]] == [ids[2], ids[1]]
    assert page["next_before_id"] == ids[1]
    rest = client.get(
        "/api/v1/monitoring/alerts", params={"limit": 2, "before_id": page["next_before_id"]}
    ).json()
    assert [(a["id"], a["open"]) for a in rest["items"]] == [(ids[0], False)]
    assert rest["next_before_id"] is None
    open_only = client.get("/api/v1/monitoring/alerts", params={"open_only": True}).json()
    assert len(open_only["items"]) == 2
    assert client.get("/api/v1/monitoring/alerts", params={"limit": 0}).status_code == 422


def test_metrics_expose_requests_jobs_and_monitor(
    client: TestClient, store: MemorySnapshotStore
) -> None:
    client.get("/api/v1/jobs/999999")
    text = client.get("/metrics").text
    assert "recflow_monitor_up 0.0" in text
    assert 'recflow_jobs{state="queued"} 0.0' in text
    assert (
        'recflow_http_requests_total{method="GET",route="/api/v1/jobs/{job_id}",status="404"}'
        in text
    )
    assert "recflow_http_request_duration_seconds_bucket" in text
    store.put(snapshot())
    text = client.get("/metrics").text
    assert "recflow_monitor_up 1.0" in text
    assert 'recflow_monitor_ctr{experiment="home",variant="A",window="1m"} 1.0' in text
    assert (
        'recflow_monitor_model_ctr{experiment="home",model_version="als-v1",variant="A",'
        'window="1m"} 1.0'
    ) in text
    assert 'recflow_monitor_events_per_second{type="total",window="1m"}' in text


def test_made_up_methods_share_one_label(client: TestClient) -> None:
    for i in range(5):
        client.request(f"BREW{i}", "/api/v1/jobs")
    text = client.get("/metrics").text
    assert "BREW" not in text
    assert 'method="OTHER",route="/api/v1/jobs"' in text


def test_page_and_script_are_served(client: TestClient) -> None:
    page = client.get("/monitor")
    assert page.status_code == 200 and 'id="rate-chart"' in page.text
    assert "/monitor/monitor.js" in page.text and "http" not in page.text.split("<body")[1]
    js = client.get("/monitor/monitor.js")
    assert js.status_code == 200 and "EventSource" in js.text


def test_sql_snapshot_store_round_trip(settings: Settings) -> None:
    s = SqlSnapshotStore(settings.sqlalchemy_url)
    assert s.get() is None
    s.put({"a": 1})
    s.put({"a": 2})
    assert s.get() == {"a": 2}
