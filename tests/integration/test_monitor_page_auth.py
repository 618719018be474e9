"""The /monitor page with API keys on, in headless Chromium: it holds no data without a key,
and with a read key it reads the stream (sent as a header by fetch, not EventSource).

No monitor runs here: the page first reads a stream without a snapshot ("no monitor"), then
one with a snapshot put in the store. Chromium comes from the Debian package ``chromium``
(skip without it, a failure under RECFLOW_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from backend.cli.stack import free_port, stop, wait_ready
from backend.config import Settings
from backend.db.migrate import upgrade
from backend.monitoring.snapshots import SqlSnapshotStore
from tests.integration.test_monitor_page import chromium, dump
from tests.unit.monitoring.test_routes import snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READ = "monitor-page-read-key-0123"


@pytest.fixture
def keyed_api(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    data = tmp_path / "var"
    settings = Settings(data_dir=data, api_keys=f"read:{READ}")  # type: ignore[arg-type]
    settings.ensure_dirs()
    upgrade(settings.sqlalchemy_url)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECFLOW_")},
        "RECFLOW_DATA_DIR": str(data),
        "RECFLOW_API_KEYS": f"read:{READ}",
    }
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "backend.api.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, [proc], timeout=60)
        yield url, settings
    finally:
        stop(proc)
    assert READ not in (tmp_path / "api.log").read_text(errors="replace")


def dump_until(browser: str, url: str, profile: Path, done: Callable[[str], bool]) -> str:
    """The page's DOM once ``done`` holds, with longer budgets on a loaded machine.

    Headless Chromium's virtual time does not run while a streamed fetch is open, so how much of
    a stream a dump shows depends on the machine's load: the assertions below stay exact, and
    only the time given to the page grows.
    """
    dom = ""
    for i, budget in enumerate((3000, 6000, 12000)):
        dom = dump(browser, url, profile.with_name(f"{profile.name}-{i}"), budget)
        if done(dom):
            break
    return dom


def state(dom: str) -> str:
    m = re.search(r'id="state"[^>]*>([^<]*)<', dom)
    assert m, "#state missing from the page"
    return m.group(1)


def test_monitor_page_asks_for_a_key_and_streams_with_one(
    keyed_api: tuple[str, Settings], tmp_path: Path
) -> None:
    browser = chromium()
    url, settings = keyed_api
    assert httpx.get(f"{url}/api/v1/monitoring/stream?max_s=1").status_code == 401
    page = f"{url}/monitor?window=1m&max_s=2"
    refused = dump(browser, page, tmp_path / "p1", 3000)
    assert state(refused) == "needs a key"
    form = re.search(r'<form id="key-form"[^>]*>', refused)
    assert form and "hidden" not in form.group(0)
    assert "read scope" in refused  # the API's message says which scope the page needs
    assert 'data-updates="0"' in refused
    allowed = dump_until(
        browser, f"{page}#key={READ}", tmp_path / "p2", lambda d: state(d) != "connecting"
    )
    assert state(allowed) == "no monitor"  # the waiting event came through the keyed stream
    assert "start the monitor" in allowed
    assert '<form id="key-form"' not in allowed
    assert READ not in allowed
    SqlSnapshotStore(settings.sqlalchemy_url).put(snapshot())
    live = dump_until(
        browser, f"{page}#key={READ}", tmp_path / "p3", lambda d: 'data-updates="0"' not in d
    )
    updates = re.search(r'<body data-updates="(\d+)"', live)
    assert updates and int(updates.group(1)) >= 1, "no snapshot reached the page"
    assert re.search(r'<tr data-variant="home/', live)
