"""Precompute into a real Redis server: one key per user holding the JSON list."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.recsys.model import FactorModel
from backend.recsys.precompute import precompute_topn, redis_key
from backend.recsys.topn import recommend
from tests.conftest import service_env


def _model() -> FactorModel:
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 120
    return FactorModel(
        user_ids=np.array([f"user-{u}" for u in range(n_users)]),
        item_ids=np.array([f"item-{i}" for i in range(n_items)]),
        global_mean=3.5,
        user_bias=rng.normal(size=n_users),
        item_bias=rng.normal(size=n_items),
        user_factors=rng.normal(size=(n_users, 3)),
        item_factors=rng.normal(size=(n_items, 3)),
        seen_indptr=np.arange(n_users + 1, dtype=np.int64),
        seen_indices=rng.integers(0, n_items, size=n_users).astype(np.int64),
        item_popularity=np.ones(n_items, dtype=np.int64),
    )


@pytest.mark.integration
def test_lists_land_in_redis() -> None:
    import redis

    client = redis.Redis.from_url(service_env("RECFLOW_REDIS_URL"))
    model = _model()
    version = "test-precompute"
    try:
        result = precompute_topn(
            model, 5, redis=client, version=version, ttl_seconds=300, memory_budget=10_000
        )
        assert result.redis_keys == model.n_users and result.n_blocks > 1
        for u in (0, 17, 39):
            key = redis_key("recflow:topn", version, str(model.user_ids[u]))
            stored = json.loads(client.get(key) or b"null")
            expected = recommend(model, u, 5)
            assert [e["item"] for e in stored] == model.item_ids[expected.items].tolist()
            assert 0 < client.ttl(key) <= 300
    finally:
        keys = list(client.scan_iter(match=f"recflow:topn:{version}:*"))
        if keys:
            client.delete(*keys)
