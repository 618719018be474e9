"""The /monitor page in headless Chromium while events flow: figures appear and update.

Chromium comes from the Debian package ``chromium``; the test skips without it, except under
RECFLOW_REQUIRE_SERVICES=1 where a missing browser is a failure.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from backend.api.app import API_PREFIX, create_app
from backend.api.routes import monitoring
from backend.config import Settings, get_settings
from backend.monitoring.prometheus import PrometheusMiddleware

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]


def make_app() -> FastAPI:
    """The API with the monitoring routers mounted (a no-op once app.py mounts them itself)."""
    app = create_app(get_settings())
    if not any(getattr(r, "path", "") == "/monitor" for r in app.routes):
        api = APIRouter(prefix=API_PREFIX)
        api.include_router(monitoring.router)
        app.include_router(api)
        app.include_router(monitoring.root_router)
        app.add_middleware(PrometheusMiddleware)
    return app


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("RECFLOW_REQUIRE_SERVICES"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def kafka() -> str:
    from tests.conftest import service_env

    return service_env("RECFLOW_KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture
def api(kafka: str, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    from backend.cli.stack import free_port, stop, wait_ready
    from backend.db.migrate import upgrade

    env = {**os.environ, "RECFLOW_DATA_DIR": str(tmp_path / "var")}
    settings = Settings(data_dir=tmp_path / "var")
    settings.ensure_dirs()
    upgrade(settings.sqlalchemy_url)
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.integration.test_monitor_page:make_app",
         "--factory", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, [proc], timeout=60)
        yield url, settings
    finally:
        stop(proc)


def dump(browser: str, url: str, profile: Path, budget_ms: int) -> str:
    out = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def figures(dom: str) -> dict[str, Any]:
    def by_id(name: str) -> str:
        m = re.search(rf'id="{name}"[^>]*>([^<]*)<', dom)
        assert m, f"#{name} missing from the page"
        return m.group(1)

    updates = re.search(r'<body data-updates="(\d+)"', dom)
    return {
        "updates": int(updates.group(1)) if updates else 0,
        "events": by_id("events"),
        "rate": by_id("rate"),
        "lag": by_id("lag"),
        "state": by_id("state"),
        "variants": sorted(set(re.findall(r'<tr data-variant="([^"]+)"', dom))),
        "polylines": dom.count("<polyline"),
    }


def test_monitor_page_shows_live_figures(
    kafka: str, api: tuple[str, Settings], tmp_path: Path
) -> None:
    browser = chromium()
    from backend.monitoring.alert_store import AlertStore
    from backend.monitoring.consumer import Monitor, MonitorOptions
    from backend.monitoring.snapshots import SqlSnapshotStore
    from backend.streaming.producer import KafkaSink, produce
    from backend.streaming.simulator import TrafficSpec, simulate_traffic

    url, settings = api
    topic = f"test-monitor-page-{uuid.uuid4().hex[:10]}"
    subprocess.run(
        ["bash", "scripts/kafka.sh", "topic", topic, "2"], check=True, capture_output=True
    )
    opts = MonitorOptions(kafka, topic=topic, group_id=f"g-{topic}", auto_offset_reset="earliest")
    mon = Monitor(
        opts, SqlSnapshotStore(settings.sqlalchemy_url), AlertStore(settings.sqlalchemy_url)
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def traffic() -> None:
        spec = TrafficSpec(
            users=5000,
            experiment="home",
            ctr={"A": 0.05, "B": 0.2},
            popularity="zipf",
            realtime=True,
        )
        sink = KafkaSink(kafka, topic)
        await produce(simulate_traffic(spec), sink, rate=400, duration_s=60, stop=stop)

    async def both() -> None:
        await asyncio.gather(mon.run(stop), traffic())

    thread = threading.Thread(target=loop.run_until_complete, args=(both(),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = httpx.get(f"{url}/api/v1/monitoring/summary", timeout=5)
            if r.status_code == 200 and r.json()["events"] > 0:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the monitor never published a snapshot with events")
        page = f"{url}/monitor?window=1m&max_s=3"
        first = figures(dump(browser, page, tmp_path / "p1", 4000))
        time.sleep(1.5)
        second = figures(dump(browser, page, tmp_path / "p2", 4000))
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
    for f in (first, second):
        assert f["updates"] >= 1, f
        assert f["events"].isdigit() and int(f["events"]) > 0, f
        assert float(f["rate"]) > 0, f
        assert f["lag"].isdigit(), f
        assert f["state"].startswith("running"), f
        assert f["variants"] == ["home/A", "home/B"], f
        assert f["polylines"] >= 4, f  # rate, lag, and one CTR line per variant
    assert int(second["events"]) > int(first["events"]), (first, second)
