"""A stop signal ends open SSE streams at once, so the API stops within a bounded time.

uvicorn waits for open connections before it runs the app's shutdown, so without the API's own
signal hook an open /monitoring/stream held a stop for up to an hour (its max_s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from backend.cli.stack import free_port, stop, wait_ready
from backend.config import Settings
from backend.db.migrate import upgrade

pytestmark = pytest.mark.integration

# Margin for a loaded CI machine on top of the configured bound; the stream's own end is
# asserted separately (it must be the graceful one, not uvicorn cancelling it).
MARGIN_S = 20


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_ends_open_streams_and_the_api_exits_within_the_bound(
    tmp_path: Path, workers: int
) -> None:
    env = {**os.environ, "RECFLOW_DATA_DIR": str(tmp_path / "var")}
    settings = Settings(data_dir=tmp_path / "var")
    settings.ensure_dirs()
    upgrade(settings.sqlalchemy_url)
    port = free_port()
    log = (tmp_path / "api.log").open("ab")
    command = [  # the `recflow api` command, as an operator runs it
        sys.executable, "-m", "backend.cli", "api", "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, [proc])
        received = b""
        with (
            httpx.Client(timeout=httpx.Timeout(30, read=MARGIN_S)) as client,
            client.stream("GET", f"{url}/api/v1/monitoring/stream", params={"max_s": 3600}) as r,
        ):
            assert r.status_code == 200
            chunks = r.iter_raw()
            while b"event: waiting" not in received:  # the stream is open and serving
                received += next(chunks)
            os.killpg(proc.pid, signal.SIGTERM)
            for chunk in chunks:  # ends when the server closes the stream
                received += chunk
        assert b"event: end" in received and b"server shutting down" in received, received
        proc.wait(timeout=settings.shutdown_timeout_s + MARGIN_S)
    finally:
        stop(proc)
        log.close()
    assert proc.returncode is not None
