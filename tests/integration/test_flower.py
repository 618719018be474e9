"""Flower, started as `recflow flower` starts it, sees the running worker through Redis, and
only for a user with its basic-auth credentials."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from backend.cli.stack import Stack, free_port, stop
from backend.config import Settings

pytestmark = pytest.mark.integration


def test_flower_lists_the_worker_behind_basic_auth(
    stack_and_settings: tuple[Stack, Settings],
) -> None:
    stack, settings = stack_and_settings
    if not settings.celery_broker_url.startswith("redis"):
        pytest.skip("Flower watches workers through a Redis (or AMQP) broker, not the SQLite one")
    port = free_port()
    password = secrets.token_urlsafe(16)
    env = {
        **{k: v for k, v in os.environ.items() if k != "FLOWER_UNAUTHENTICATED_API"},
        "RECFLOW_ENV": "production",
        "RECFLOW_API_KEY": stack.api_key or secrets.token_urlsafe(24),
        "RECFLOW_DATABASE_URL": settings.sqlalchemy_url,
        "RECFLOW_BROKER_URL": settings.celery_broker_url,
        "RECFLOW_RESULT_BACKEND": settings.celery_result_backend,
        "RECFLOW_FLOWER_BASIC_AUTH": f"ops:{password}",
    }
    flower = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "flower", "--port", str(port)],
        env=env,
        stdout=(stack.log_dir / "flower.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api/workers"
    try:
        deadline = time.monotonic() + 60
        workers: dict[str, Any] = {}
        while time.monotonic() < deadline and not workers:
            try:
                r = httpx.get(url, params={"refresh": "true"}, auth=("ops", password), timeout=10)
                if r.status_code == 200:
                    workers = r.json()
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert workers, "Flower saw no worker within 60 s"
        name = next(iter(workers))
        assert name.startswith("celery@")
        assert "recflow" in str(workers[name].get("active_queues", ""))
        # Without credentials, or with wrong ones, Flower refuses: its API and its pages.
        assert httpx.get(url, timeout=10).status_code == 401
        assert httpx.get(url, auth=("ops", "wrong"), timeout=10).status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 401
        assert httpx.get(url, auth=("ops", password), timeout=10).status_code == 200
    finally:
        stop(flower)
    assert password not in (stack.log_dir / "flower.log").read_text(errors="replace")
