"""The recommendation route reads precomputed lists from a real Redis when they are valid for
the model that answers, and computes otherwise; answers say which."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.config import Settings
from backend.recsys.precompute import meta_key
from backend.serving.service import recommend_for
from tests.conftest import service_env
from tests.unit.serving.test_recommendations_api import run_job, train

pytestmark = pytest.mark.integration
USERS = [f"u{i}" for i in range(60)]


@pytest.fixture
def on(settings: Settings) -> Iterator[Settings]:
    import redis

    url = service_env("RECFLOW_REDIS_URL")
    prefix = f"recflow:test-{uuid.uuid4().hex[:12]}"
    yield settings.model_copy(
        update={"redis_url": url, "serving_precomputed": True, "topn_key_prefix": prefix}
    )
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def get(client: TestClient, user: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"/api/v1/users/{user}/recommendations", params={"n": 10, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_valid_lists_are_served_and_equal_computed(on: Settings) -> None:
    import redis

    assert train(on, version="v1", activate="always")["state"] == "succeeded"
    assert train(on, version="v2", activate="never")["state"] == "succeeded"
    job = run_job(on, "simulate", {"mode": "precompute", "n": 20, "to_redis": True})
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["redis_keys"] == 300
    with TestClient(create_app(on)) as client:
        client.app.state.models.refresh()  # type: ignore[attr-defined]
        sm = client.app.state.models.current  # type: ignore[attr-defined]
        for user in USERS:
            for n in (3, 20):
                body = get(client, user, n=n)
                assert body["source"] == "precomputed" and body["model_version"] == "v1"
                assert body["items"] == recommend_for(sm, user, n, True, None, None)["items"]
        # Requests a list cannot answer are computed.
        assert get(client, "u1", n=21)["source"] == "computed"  # longer than the lists
        assert get(client, "u1", exclude_seen="false")["source"] == "computed"
        assert get(client, "u1", exclude="i1")["source"] == "computed"
        assert get(client, "nobody")["source"] == "computed"  # the popularity fallback
        assert get(client, "nobody")["strategy"] == "popular"

        # A hidden item is dropped from the list; the answer still equals the computed one.
        top = get(client, "u1")["items"][0]["item"]
        assert client.put(f"/api/v1/items/{top}", json={"hidden": True}).status_code == 201
        client.app.state.models.refresh()  # type: ignore[attr-defined]
        sm = client.app.state.models.current  # type: ignore[attr-defined]
        body = get(client, "u1")
        assert body["source"] == "precomputed" and top not in {i["item"] for i in body["items"]}
        assert body["items"] == recommend_for(sm, "u1", 10, True, None, None)["items"]

        # A category filter is computed: the lists hold every category.
        for item in ("i1", "i2", "i3"):
            r = client.put(f"/api/v1/items/{item}", json={"categories": ["Drama"]})
            assert r.status_code in (200, 201), r.text
        client.app.state.models.refresh()  # type: ignore[attr-defined]
        body = get(client, "u1", n=2, category="Drama")
        assert body["source"] == "computed"
        assert {i["item"] for i in body["items"]} <= {"i1", "i2", "i3"}

        # An experiment variant served by v2, which has no lists: its users are computed.
        r = client.post(
            "/api/v1/experiments",
            json={
                "name": "home",
                "variants": [
                    {"name": "a", "weight": 50, "model_version": "v1"},
                    {"name": "b", "weight": 50, "model_version": "v2"},
                ],
            },
        )
        assert r.status_code == 201, r.text
        assert client.post("/api/v1/experiments/home/start").status_code == 200
        client.app.state.models.refresh()  # type: ignore[attr-defined]
        sources = {(b["model_version"], b["source"]) for b in (get(client, u) for u in USERS)}
        assert sources == {("v1", "precomputed"), ("v2", "computed")}

        # Stale: a meta older than the max age.
        raw = redis.Redis.from_url(on.redis_url)
        key = meta_key(on.topn_key_prefix, "v1")
        meta = json.loads(raw.get(key) or b"{}")
        meta["computed_at"] -= on.serving_precomputed_max_age_s + 60
        raw.set(key, json.dumps(meta))
        assert {get(client, u)["source"] for u in USERS} == {"computed"}
