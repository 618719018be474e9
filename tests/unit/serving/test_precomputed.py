"""Precomputed lists answer only when valid, and then exactly as serving would compute.

The lists are what ``precompute_topn`` writes (captured by the recording client its tests use);
the Redis round trip itself is covered by ``test_precomputed_redis.py`` against a real server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from backend.api.app import create_app
from backend.config import Settings
from backend.db.migrate import upgrade
from backend.recsys.precompute import meta_key, precompute_topn, redis_key
from backend.serving import precomputed
from backend.serving.model import ServingModel, load_serving_model
from backend.serving.precomputed import FALLBACKS, Meta, PrecomputedReader, usable
from backend.serving.service import ranked, recommend_for
from tests.unit.recsys.test_precompute import RecordingRedis
from tests.unit.serving.test_recommendations_api import train

N = 20
DAY = 86_400.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> ServingModel:
    s = Settings(data_dir=tmp_path_factory.mktemp("precomputed") / "var")
    s.ensure_dirs()
    upgrade(s.sqlalchemy_url)
    job = train(s, version="v1", activate="always")
    assert job["state"] == "succeeded", job["error"]
    return load_serving_model(7, "v1", Path(s.data_dir) / job["result"]["path"])


@pytest.fixture(scope="module")
def store(trained: ServingModel) -> dict[str, str]:
    client = RecordingRedis()
    precompute_topn(trained.model, N, redis=client, version="v1", model_id=7)
    return {k: v for k, (v, _) in client.store.items()}


def lookup(
    sm: ServingModel, store: dict[str, str], user: str, n: int, exclude_seen: bool = True
) -> tuple[dict[str, object] | None, str]:
    """``usable`` on what precompute stored, rendered like an answer's items (or None)."""
    meta = Meta.parse(store[meta_key("recflow:topn", "v1")])
    raw = store.get(redis_key("recflow:topn", "v1", user))
    top, reason = usable(sm, meta, raw, n, exclude_seen, now=time.time(), max_age_s=DAY)
    if top is None:
        return None, reason
    return {"items": ranked(sm, top)}, reason


def test_meta_records_the_run(store: dict[str, str]) -> None:
    meta = Meta.parse(store[meta_key("recflow:topn", "v1")])
    assert meta is not None and meta.version == "v1" and meta.model_id == 7
    assert meta.n == N and meta.exclude_seen is True and 0 <= time.time() - meta.computed_at < 600


def test_precomputed_equals_computed_for_every_user(
    trained: ServingModel, store: dict[str, str]
) -> None:
    users = trained.model.user_ids.tolist()
    assert len(users) >= 250
    for user in users:
        for n in (1, 10, N):
            got, reason = lookup(trained, store, user, n)
            want = recommend_for(trained, user, n, True, None, None)
            assert reason == "ok" and got is not None, (user, n, reason)
            assert got["items"] == want["items"], (user, n)


def test_hidden_items_are_dropped_and_too_few_left_is_computed(
    trained: ServingModel, store: dict[str, str]
) -> None:
    visible = np.ones(trained.model.n_items, dtype=np.bool_)
    # Hide the first 8 items of user u1's list, and a random third of the catalogue.
    first = json.loads(store[redis_key("recflow:topn", "v1", "u1")])
    hidden = [trained.ids.items[e["item"]] for e in first[:8]]
    visible[hidden] = False
    visible[np.random.default_rng(0).random(visible.shape[0]) < 0.3] = False
    sm = ServingModel(
        model_id=7,
        version="v1",
        model=trained.model,
        ids=trained.ids,
        titles=trained.titles,
        categories=trained.categories,
        loaded_at=trained.loaded_at,
        visible=visible,
    )
    served = 0
    for user in trained.model.user_ids.tolist()[:100]:
        want = recommend_for(sm, user, 10, True, None, None)
        got, reason = lookup(sm, store, user, 10)
        if got is None:  # fewer than 10 visible items left in the list of 20
            assert reason == "short"
            continue
        served += 1
        assert got["items"] == want["items"]
        assert all(visible[sm.ids.items[i["item"]]] for i in got["items"])
    assert served > 0
    got, reason = lookup(sm, store, "u1", N - 8 + 1)
    assert got is None and reason == "short"


def test_invalid_lists_are_not_used(trained: ServingModel, store: dict[str, str]) -> None:
    meta = Meta.parse(store[meta_key("recflow:topn", "v1")])
    assert meta is not None
    raw = store[redis_key("recflow:topn", "v1", "u1")]
    now = time.time()

    def reason(m: Meta | None, n: int = 10, **kw: object) -> str:
        sm = kw.pop("sm", trained)
        assert isinstance(sm, ServingModel)
        top, why = usable(
            sm,
            m,
            kw.pop("raw", raw),  # type: ignore[arg-type]
            n,
            bool(kw.pop("exclude_seen", True)),
            now=float(kw.pop("now", now)),  # type: ignore[arg-type]
            max_age_s=DAY,
        )
        assert (top is None) == (why != "ok")
        return why

    other = ServingModel(
        model_id=8,
        version="v2",
        model=trained.model,
        ids=trained.ids,
        titles=None,
        categories=None,
        loaded_at=trained.loaded_at,
    )
    same_label = ServingModel(
        model_id=9,
        version="v1",
        model=trained.model,
        ids=trained.ids,
        titles=None,
        categories=None,
        loaded_at=trained.loaded_at,
    )
    assert reason(meta) == "ok"
    assert reason(None) == "missing" and reason(meta, raw=None) == "missing"
    assert reason(meta, sm=other) == "version"  # computed for another version
    assert reason(meta, sm=same_label) == "version"  # same label, another registered model
    assert reason(meta, now=meta.computed_at + DAY + 1) == "stale"  # older than the max age
    assert reason(meta, now=meta.computed_at - 60) == "stale"  # from a clock ahead of ours
    assert reason(meta, exclude_seen=False) == "exclude_seen"  # computed with other semantics
    assert reason(meta, n=N + 1) == "short"  # the run's lists are shorter than asked
    assert reason(meta, raw=json.dumps(json.loads(raw)[:5]), n=6) == "short"
    assert reason(meta, raw='[{"item": "not-an-item", "score": 1.0}]', n=1) == "invalid"
    assert reason(meta, raw="not json") == "invalid"
    assert Meta.parse(b"{}") is None and Meta.parse(b"[1]") is None and Meta.parse(None) is None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_redis_down_falls_back_logs_once_and_backs_off(
    trained: ServingModel, caplog: pytest.LogCaptureFixture
) -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{_closed_port()}/0", socket_connect_timeout=0.5)
    reader = PrecomputedReader(client, "recflow:topn", DAY, timeout_s=1.0, retry_s=60.0)
    before = FALLBACKS.labels("unavailable")._value.get()

    async def three() -> list[object]:
        try:
            return [await reader.lookup(trained, "u1", 10, True) for _ in range(3)]
        finally:
            await reader.close()

    with caplog.at_level(logging.WARNING, logger=precomputed.__name__):
        got = asyncio.run(three())
    assert got == [None, None, None]
    assert FALLBACKS.labels("unavailable")._value.get() - before == 3
    assert caplog.text.count("cannot read precomputed lists") == 1


@pytest.fixture
def down_client(settings: Settings) -> Iterator[TestClient]:
    """The API with precomputed reading on and Redis unreachable."""
    on = settings.model_copy(
        update={"serving_precomputed": True, "redis_url": f"redis://127.0.0.1:{_closed_port()}/0"}
    )
    with TestClient(create_app(on)) as c:
        yield c


def test_api_computes_when_redis_is_down(settings: Settings, down_client: TestClient) -> None:
    job = train(settings, version="v1", activate="always")
    assert job["state"] == "succeeded", job["error"]
    down_client.app.state.models.refresh()  # type: ignore[attr-defined]
    sm = down_client.app.state.models.current  # type: ignore[attr-defined]
    for user in ("u1", "u2", "nobody"):
        r = down_client.get(f"/api/v1/users/{user}/recommendations", params={"n": 5})
        body = r.json()
        assert r.status_code == 200 and body["source"] == "computed"
        assert body["items"] == recommend_for(sm, user, 5, True, None, None)["items"]
    assert down_client.app.state.precomputed is not None  # type: ignore[attr-defined]
