"""Precompute: all-users top-N streamed to Parquet (read back) equals per-user recommend()."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from surprise import SVD, Dataset, Reader

from backend.recsys.errors import InvalidParameterError
from backend.recsys.model import FactorModel
from backend.recsys.precompute import PARQUET_NAME, meta_key, precompute_topn, redis_key
from backend.recsys.surprise_adapter import factor_model_from_surprise
from backend.recsys.topn import recommend


@pytest.fixture(scope="module")
def model(ml100k_dir: Path) -> FactorModel:
    data = Dataset.load_from_file(str(ml100k_dir / "u.data"), reader=Reader("ml-100k"))
    trainset = data.build_full_trainset()
    algo = SVD(n_factors=30, n_epochs=10, random_state=11).fit(trainset)
    return factor_model_from_surprise(algo, trainset, algorithm="svd", params={})


def test_parquet_equals_recommend(model: FactorModel, tmp_path: Path) -> None:
    seen_progress: list[tuple[int, int]] = []
    # 1682 items x 9 bytes: a 1 MB budget gives blocks of 69 users, so 14 row groups.
    result = precompute_topn(
        model,
        10,
        out_dir=tmp_path,
        memory_budget=1_000_000,
        progress=lambda done, total: seen_progress.append((done, total)),
    )
    assert result.parquet_path == tmp_path / PARQUET_NAME
    assert result.n_users == model.n_users and result.n_rows == 10 * model.n_users
    assert result.block_size == 1_000_000 // (model.n_items * 9)
    assert result.n_blocks == -(-model.n_users // result.block_size)
    assert pq.ParquetFile(result.parquet_path).metadata.num_row_groups == result.n_blocks
    assert seen_progress[-1] == (model.n_users, model.n_users)
    assert len(seen_progress) == result.n_blocks
    assert [p.name for p in tmp_path.iterdir()] == [PARQUET_NAME]

    table = pq.read_table(result.parquet_path)
    assert table.column_names == ["user", "rank", "item", "score"]
    frame = table.to_pandas()
    by_user = {u: g.sort_values("rank") for u, g in frame.groupby("user")}
    for u in np.random.default_rng(0).choice(model.n_users, size=60, replace=False):
        expected = recommend(model, int(u), 10)
        got = by_user[model.user_ids[u]]
        assert got["rank"].tolist() == list(range(1, 11))
        assert got["item"].tolist() == model.item_ids[expected.items].tolist()
        assert np.allclose(got["score"].to_numpy(), expected.scores, atol=1e-9)


def test_float32_and_user_subset(model: FactorModel, tmp_path: Path) -> None:
    users = np.array([5, 1, 900])
    result = precompute_topn(model, 5, out_dir=tmp_path, users=users, dtype=np.float32)
    frame = pq.read_table(result.parquet_path).to_pandas()
    assert str(frame["score"].dtype) == "float32"
    assert frame["user"].drop_duplicates().tolist() == model.user_ids[users].tolist()
    for u in users:
        expected = model.item_ids[recommend(model, int(u), 5).items].tolist()
        assert frame.loc[frame["user"] == model.user_ids[u], "item"].tolist() == expected


def test_rerun_replaces_the_file(model: FactorModel, tmp_path: Path) -> None:
    precompute_topn(model, 3, out_dir=tmp_path, users=[0, 1])
    again = precompute_topn(model, 3, out_dir=tmp_path, users=[2])
    assert again.parquet_path is not None
    assert pq.read_table(again.parquet_path).num_rows == 3


class RecordingRedis:
    """Stands in for a Redis client; records what one pipelined SET per user would store."""

    def __init__(self) -> None:
        self.store: dict[str, tuple[str, int | None]] = {}
        self.executions = 0
        self.log: list[list[str]] = []  # the keys each execution touched, in order
        self._pending: list[tuple[str, str | None, int | None]] = []

    def pipeline(self, transaction: bool = True) -> RecordingRedis:
        assert transaction is False
        self._pending = []
        return self

    def set(self, name: str, value: str, ex: int | None = None) -> Any:
        self._pending.append((name, value, ex))

    def delete(self, *names: str) -> Any:
        self._pending.extend((name, None, None) for name in names)

    def execute(self) -> Any:
        self.executions += 1
        self.log.append([name for name, _, _ in self._pending])
        for name, value, ex in self._pending:
            if value is None:
                self.store.pop(name, None)
            else:
                self.store[name] = (value, ex)


def test_redis_payload_per_user(model: FactorModel) -> None:
    client = RecordingRedis()
    result = precompute_topn(
        model, 4, redis=client, version="v7", ttl_seconds=60, memory_budget=2_000_000
    )
    assert result.redis_keys == model.n_users == len(client.store) - 1
    meta = meta_key("recflow:topn", "v7")
    # The meta key goes first (deleted) and last (set): a reader never trusts a partial run.
    assert client.executions == result.n_blocks + 2
    assert client.log[0] == [meta] and client.log[-1] == [meta]
    value, ttl = client.store[meta]
    assert ttl == 60 and json.loads(value)["n"] == 4 and json.loads(value)["version"] == "v7"
    assert json.loads(value)["exclude_seen"] is True and json.loads(value)["users"] == model.n_users
    value, ttl = client.store[redis_key("recflow:topn", "v7", str(model.user_ids[3]))]
    expected = recommend(model, 3, 4)
    assert ttl == 60
    payload = json.loads(value)
    assert [e["item"] for e in payload] == model.item_ids[expected.items].tolist()
    assert np.allclose([e["score"] for e in payload], expected.scores)


def test_bad_parameters(model: FactorModel) -> None:
    with pytest.raises(InvalidParameterError, match="version"):
        precompute_topn(model, 3, version="a:b")
    with pytest.raises(InvalidParameterError, match="ttl_seconds"):
        precompute_topn(model, 3, ttl_seconds=0)
