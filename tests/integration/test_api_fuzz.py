"""Schemathesis against a real uvicorn process: no 5xx, every answer as documented.

The API runs as it is deployed (uvicorn, its own process, the real middleware and
connections) on a migrated database with a trained, active model; no worker runs, so fuzzed
jobs stay queued and nothing heavy executes. schemathesis' own command runs every phase
(examples, coverage of each schema's boundaries, fuzzing, stateful sequences through the API's
links) with a fixed seed and a bounded number of examples per operation. A server error, a
status the operation does not document, a content type or a body that breaks the documentation
fails the test; a 503 is accepted only where the operation documents it (a monitor without a
snapshot). Runs: the embedded stack without keys, with an admin key, and with keys but none
sent; the services stack (PostgreSQL, Redis) with an admin key.

Chunked bodies over the limit and non-UTF-8 header bytes are sent here too, through a real
socket, since a test client cannot reproduce how uvicorn hands them to the app.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from backend.cli.stack import free_port, stop, wait_ready
from backend.config import Settings
from tests.integration.stacks import prepared, stack_env
from tests.unit.api.schemathesis_support import MAX_EXAMPLES, train_active_model

pytestmark = pytest.mark.integration

ADMIN_KEY = "fuzz-admin-key-0123456789"
SEED = 15
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
# A 503 passes not_a_server_error; status_code_conformance then fails it unless documented.
CONFIG = """
[checks.not_a_server_error]
expected-statuses = ["2XX", "3XX", "4XX", "503"]
"""


@contextmanager
def api_process(kind: str, data_dir: Path, *, keys: bool) -> Iterator[tuple[str, Settings]]:
    """uvicorn serving a migrated database with a trained, active model; no worker."""
    env = stack_env(kind, data_dir)
    if keys:
        env.pop("RECFLOW_API_KEY", None)
        env["RECFLOW_API_KEYS"] = f"admin:{ADMIN_KEY}"
    settings = prepared(env)
    train_active_model(settings)
    port = free_port()
    log = (data_dir / "api.log").open("ab")
    command = [
        sys.executable, "-m", "uvicorn", "backend.api.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, [proc])
        yield url, settings
    finally:
        stop(proc)
        log.close()


def run_schemathesis(
    url: str, workdir: Path, *, key: str | None, send_key: bool, max_examples: int
) -> None:
    """``st run`` against the live API; fails the test with its report on any failure."""
    headers = {"X-API-Key": key} if key else {}
    document = httpx.get(f"{url}/openapi.json", headers=headers, timeout=10)
    assert document.status_code == 200, document.text
    schema_file = workdir / "openapi.json"
    schema_file.write_text(json.dumps(document.json()))
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    args = [
        str(Path(sys.executable).parent / "st"), "--config-file", str(config), "--no-color",
        "run", str(schema_file), "--url", url,
        "--checks", CHECKS,
        "--max-examples", str(max_examples), "--seed", str(SEED), "--workers", "1",
        "--exclude-path", "/api/v1/monitoring/stream",  # endless by design; tested on its own
        "--request-timeout", "30",
        "--generation-database", "none",
    ]  # fmt: skip
    if key and send_key:
        args += ["--header", f"X-API-Key: {key}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=workdir)
    report = done.stdout[-20_000:] + done.stderr[-5_000:]
    assert done.returncode == 0, report
    assert "generated" in report, report  # it really generated and sent cases


def test_fuzz_the_embedded_api_without_keys(tmp_path: Path) -> None:
    with api_process("embedded", tmp_path / "var", keys=False) as (url, _):
        run_schemathesis(url, tmp_path, key=None, send_key=False, max_examples=MAX_EXAMPLES)


def test_fuzz_the_embedded_api_with_keys(tmp_path: Path) -> None:
    with api_process("embedded", tmp_path / "var", keys=True) as (url, _):
        run_schemathesis(url, tmp_path, key=ADMIN_KEY, send_key=True, max_examples=MAX_EXAMPLES)
        # The same operations with no key: each guarded one answers its documented 401.
        run_schemathesis(url, tmp_path, key=ADMIN_KEY, send_key=False, max_examples=2)


def test_fuzz_the_services_api_with_keys(tmp_path: Path) -> None:
    with api_process("services", tmp_path / "var", keys=True) as (url, _):
        run_schemathesis(url, tmp_path, key=ADMIN_KEY, send_key=True, max_examples=MAX_EXAMPLES)
        # PostgreSQL refuses a NUL character in text, which SQLite stores: only this stack can
        # show that such a value is the request's fault (422), not the server's.
        headers = {"X-API-Key": ADMIN_KEY}
        for path, params in (
            ("/api/v1/metrics/records", {"name": "rm\x00se"}),
            ("/api/v1/jobs", {"kind": "echo\x00"}),
            ("/api/v1/reports/pipeline", {"kind": "train\x00"}),
        ):
            r = httpx.get(url + path, params=params, headers=headers, timeout=10)
            assert r.status_code == 422, (path, r.status_code, r.text)
            assert r.json()["error"]
        r = httpx.post(
            url + "/api/v1/scenarios/compare",
            json={"user": "1", "versions": ["v\x001"]},
            headers=headers,
            timeout=10,
        )
        assert r.status_code == 422, r.text


def _raw_request(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_chunked_oversize_and_raw_header_bytes_through_uvicorn(tmp_path: Path) -> None:
    with api_process("embedded", tmp_path / "var", keys=False) as (url, settings):
        # A chunked body over the limit, without Content-Length: 413, on every kind of route.
        for path in ("/api/v1/jobs", "/api/v1/experiments/e1/upload", "/api/v1/scenarios/compare"):
            ctype = "text/csv" if path.endswith("upload") else "application/json"

            def body() -> Iterator[bytes]:
                for _ in range(settings.max_body_bytes // 65536 + 2):
                    yield b" " * 65536

            r = httpx.post(url + path, content=body(), headers={"Content-Type": ctype}, timeout=30)
            assert r.status_code == 413, (path, r.text)
            assert "larger than" in r.json()["error"]
        # Header values with bytes that are not UTF-8, on a POST with a JSON body.
        payload = b'{"kind": "echo", "params": {}}'
        raw = (
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Trace: caf\xe9\xff\xfe\r\nIdempotency-Key: k\xe9y\r\n"
            b"Content-Length: " + str(len(payload)).encode() + b"\r\nConnection: close\r\n\r\n"
        ) + payload
        answer = _raw_request(url, raw)
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.split()[1] in (b"200", b"202"), answer[:500]
