"""Train through the queue, serve from two API processes, switch versions without downtime."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from backend.cli.stack import Stack
from backend.config import Settings
from tests.integration.test_job_platform import poll

pytestmark = pytest.mark.integration

REFRESH_S = Settings().serving_refresh_s  # how often each API process checks the active model


def train(stack: Stack, version: str, ml100k: str, **extra: Any) -> dict[str, Any]:
    params = {
        "data": {"format": "ml-100k", "path": ml100k},
        "items": {"format": "ml-100k", "path": ml100k},
        "version": version,
        "model": {"params": {"n_epochs": 5, "random_state": 7}},
        **extra,
    }
    r = httpx.post(
        f"{stack.api_url}/api/v1/jobs",
        json={"kind": "train", "params": params},
        headers=stack.headers,
    )
    assert r.status_code == 202, r.text
    done = poll(stack, r.json()["id"], ("succeeded", "failed"), timeout=240)
    assert done["state"] == "succeeded", done["error"]
    assert [s["name"] for s in done["stages"]] == ["load", "fit", "save", "register"]
    return done


def versions_seen(stack: Stack, n: int, *, before_first_model: bool = False) -> set[str]:
    """Model versions that answered n requests (spread over both API processes)."""
    seen = set()
    with stack.client(timeout=10) as c:
        for u in range(1, n + 1):
            r = c.get(f"/api/v1/users/{u}/recommendations", params={"n": 5})
            if before_first_model and r.status_code == 503:
                seen.add("none")
                continue
            assert r.status_code == 200, r.text
            seen.add(r.json()["model_version"])
    return seen


def test_train_serve_and_switch_versions(
    stack_and_settings: tuple[Stack, Settings], ml100k_dir: Any
) -> None:
    stack, _ = stack_and_settings
    v1 = f"a{int(time.time())}"
    v2 = f"b{int(time.time())}"
    first = train(stack, v1, str(ml100k_dir), activate="always")
    deadline = time.monotonic() + 20
    while versions_seen(stack, 20, before_first_model=True) != {v1}:
        assert time.monotonic() < deadline, "the API processes did not load the new model"
        time.sleep(0.5)
    # Requests may all land on one process: past one refresh period every process has it.
    time.sleep(REFRESH_S + 0.5)
    assert versions_seen(stack, 40) == {v1}
    r = httpx.get(
        f"{stack.api_url}/api/v1/users/1/recommendations",
        params={"n": 10, "category": ["Comedy"]},
        headers=stack.headers,
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 10 and all(i["title"] for i in items)
    second = train(stack, v2, str(ml100k_dir), activate="never")
    assert second["result"]["activated"] is False
    model_id = second["result"]["model_id"]
    r = httpx.post(f"{stack.api_url}/api/v1/models/{model_id}/activate", headers=stack.headers)
    assert r.status_code == 200 and r.json()["active"] is True
    # Both API worker processes switch within a refresh period, and no request fails meanwhile
    # (versions_seen asserts a 200 for every request).
    deadline = time.monotonic() + 20
    while versions_seen(stack, 20) != {v2}:
        assert time.monotonic() < deadline, "not every API process switched to the new version"
        time.sleep(0.2)
    time.sleep(REFRESH_S + 0.5)
    assert versions_seen(stack, 40) == {v2}
    models = httpx.get(f"{stack.api_url}/api/v1/models", headers=stack.headers).json()["items"]
    assert [m["version"] for m in models if m["active"]] == [v2]
    assert first["result"]["model_id"] != model_id
