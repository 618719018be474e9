"""Flower, started as `make flower` starts it, sees the running worker through Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from backend.cli.stack import Stack, free_port, stop
from backend.config import Settings

pytestmark = pytest.mark.integration


def test_flower_lists_the_worker(stack_and_settings: tuple[Stack, Settings]) -> None:
    stack, settings = stack_and_settings
    if not settings.celery_broker_url.startswith("redis"):
        pytest.skip("Flower watches workers through a Redis (or AMQP) broker, not the SQLite one")
    port = free_port()
    env = {
        **os.environ,
        "RECFLOW_ENV": "production",
        "RECFLOW_DATABASE_URL": settings.sqlalchemy_url,
        "RECFLOW_BROKER_URL": settings.celery_broker_url,
        "RECFLOW_RESULT_BACKEND": settings.celery_result_backend,
        "FLOWER_UNAUTHENTICATED_API": "true",
    }
    flower = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "flower", "--port", str(port)],
        env=env,
        stdout=(stack.log_dir / "flower.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        workers: dict[str, object] = {}
        while time.monotonic() < deadline and not workers:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/api/workers", params={"refresh": "true"}, timeout=10
                )
                if r.status_code == 200:
                    workers = r.json()
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert workers, "Flower saw no worker within 60 s"
        name = next(iter(workers))
        assert name.startswith("celery@")
        assert "recflow" in str(workers[name].get("active_queues", ""))  # type: ignore[union-attr]
    finally:
        stop(flower)
