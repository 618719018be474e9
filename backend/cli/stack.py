"""Start the API and a worker as child processes (for the demo, benchmarks and tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_command(concurrency: int, pool: str = "prefork", loglevel: str = "INFO") -> list[str]:
    """The command line of a Celery worker on the ``recflow`` queue, with task events on."""
    return [
        sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "recflow",
        "-c", str(concurrency), "-P", pool, "--loglevel", loglevel, "-E",
    ]  # fmt: skip


@dataclass
class Stack:
    api_url: str
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    log_dir: Path
    # The key the stack's API was started with (RECFLOW_API_KEY: every scope), if any.
    api_key: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The headers every request to this stack's API needs (the key, when it has one)."""
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def client(self, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client for this stack's API that sends its key."""
        return httpx.Client(base_url=self.api_url, headers=self.headers, timeout=timeout)


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    # A new session, so the whole process tree can be stopped with one signal.
    return subprocess.Popen(
        args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def wait_ready(url: str, procs: list[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a child process exited early with code {p.returncode}")
        try:
            r = httpx.get(f"{url}/health/ready", timeout=2)
            if r.status_code == 200:
                return
            last = r.text
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"the API did not become ready within {timeout:.0f} s: {last}")


@contextmanager
def running_stack(
    log_dir: Path,
    *,
    api_workers: int = 1,
    worker_concurrency: int = 2,
    env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """API (uvicorn) plus one Celery worker, stopped on exit. Logs go to ``log_dir``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    port = free_port()
    api = _spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "backend.api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(api_workers),
            "--log-level",
            "warning",
        ],
        log_dir / "api.log",
        full_env,
    )
    worker = _spawn(worker_command(worker_concurrency), log_dir / "worker.log", full_env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, [api, worker])
        yield Stack(
            api_url=url,
            api=api,
            worker=worker,
            log_dir=log_dir,
            api_key=full_env.get("RECFLOW_API_KEY") or None,
        )
    finally:
        stop(api)
        stop(worker)
