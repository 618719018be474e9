"""All-users top-N, computed in blocks and streamed to Parquet and, optionally, Redis.

Each block of users costs one matrix-matrix product against all items, then a partial sort
(:func:`backend.recsys.batch.iter_topn_blocks`). The block size comes from a memory budget in
bytes, so memory stays bounded whatever the number of users or items, and each block is written
out (one Parquet row group; one Redis pipeline) before the next is computed.

Parquet layout, one row per (user, rank): ``user`` (raw id, string), ``rank`` (1 = best, int32),
``item`` (raw id, string), ``score`` (unclipped estimate; float32 or float64 as computed).
Redis layout: one key per user, ``{key_prefix}:{version}:{user}`` holding a JSON list
``[{"item": "50", "score": 4.87}, ...]`` best first, and one meta key per version,
``{key_prefix}:{version}`` holding ``{"version", "model_id", "n", "exclude_seen", "users",
"computed_at"}`` (``computed_at``: Unix seconds when the run started). The meta key is deleted
before the first list is written and set after the last, so a reader that finds it knows every
list of the run is complete and how it was computed (serving checks it before using a list).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backend.recsys.batch import (
    DEFAULT_MEMORY_BUDGET,
    TopNBlock,
    block_rows,
    iter_topn_blocks,
)
from backend.recsys.errors import InvalidParameterError
from backend.recsys.model import FactorModel

__all__ = [
    "PARQUET_NAME",
    "PrecomputeResult",
    "RedisClient",
    "RedisPipeline",
    "meta_key",
    "precompute_topn",
    "redis_key",
]

PARQUET_NAME = "topn.parquet"


class RedisPipeline(Protocol):
    """The part of a redis-py pipeline that precompute uses."""

    def set(self, name: str, value: str, ex: int | None = None) -> Any: ...

    def delete(self, *names: str) -> Any: ...

    def execute(self) -> Any: ...


class RedisClient(Protocol):
    """The part of a redis-py client that precompute uses (``redis.Redis`` satisfies it)."""

    def pipeline(self, transaction: bool = True) -> RedisPipeline: ...


@dataclass(frozen=True)
class PrecomputeResult:
    """What a precompute run produced and how long its parts took (seconds)."""

    n_users: int
    n_rows: int
    n_blocks: int
    block_size: int
    parquet_path: Path | None
    redis_keys: int
    compute_seconds: float
    write_seconds: float
    total_seconds: float


def redis_key(key_prefix: str, version: str, raw_user: str) -> str:
    """The Redis key of one user's precomputed list."""
    return f"{key_prefix}:{version}:{raw_user}"


def meta_key(key_prefix: str, version: str) -> str:
    """The Redis key of a version's precompute meta (never a user's key: those have 3 parts)."""
    return f"{key_prefix}:{version}"


def _block_table(
    block: TopNBlock, user_ids: pa.Array, item_ids: pa.Array, schema: pa.Schema
) -> pa.Table:
    k = block.items.shape[1]
    valid = np.arange(k)[None, :] < block.counts[:, None]
    users = np.broadcast_to(block.users[:, None], valid.shape)[valid]
    ranks = np.broadcast_to(np.arange(1, k + 1, dtype=np.int32)[None, :], valid.shape)[valid]
    return pa.Table.from_arrays(
        [
            pc.take(user_ids, pa.array(users)),
            pa.array(ranks, type=pa.int32()),
            pc.take(item_ids, pa.array(block.items[valid])),
            pa.array(block.scores[valid]),
        ],
        schema=schema,
    )


def _write_redis(
    client: RedisClient,
    block: TopNBlock,
    model: FactorModel,
    key_prefix: str,
    version: str,
    ttl_seconds: int | None,
) -> int:
    pipe = client.pipeline(transaction=False)
    raw_users = model.user_ids[block.users].tolist()
    for r, user in enumerate(raw_users):
        c = int(block.counts[r])
        items = model.item_ids[block.items[r, :c]].tolist()
        scores = block.scores[r, :c].tolist()
        payload = json.dumps(
            [{"item": i, "score": s} for i, s in zip(items, scores, strict=True)],
            separators=(",", ":"),
        )
        pipe.set(redis_key(key_prefix, version, user), payload, ex=ttl_seconds)
    pipe.execute()
    return len(raw_users)


def precompute_topn(
    model: FactorModel,
    n: int,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    redis: RedisClient | None = None,
    version: str = "latest",
    key_prefix: str = "recflow:topn",
    ttl_seconds: int | None = None,
    users: npt.ArrayLike | None = None,
    exclude_seen: bool = True,
    dtype: npt.DTypeLike = np.float64,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: Callable[[int, int], None] | None = None,
    model_id: int | None = None,
) -> PrecomputeResult:
    """Top ``n`` unseen items of every user (or of ``users``, inner ids), written block by block.

    With ``out_dir`` the lists go to ``out_dir/topn.parquet`` (written under a temporary name
    and renamed when complete, so readers never see a partial file; a rerun replaces it). With
    ``redis`` each user's list is ``SET`` under :func:`redis_key` in one pipeline per block,
    with ``ttl_seconds`` if given, and the version's :func:`meta_key` (``model_id`` is recorded
    in it) is deleted first and set last, with the same TTL. With neither, the lists are
    computed and only counted.
    ``progress(done_users, total_users)`` is called after each block. Ranking and ties follow
    :func:`backend.recsys.topn.recommend`.
    """
    started = time.perf_counter()
    started_at = time.time()
    if not version or ":" in version:
        raise InvalidParameterError(f"version must be non-empty and free of ':', got {version!r}")
    if ttl_seconds is not None and ttl_seconds < 1:
        raise InvalidParameterError(f"ttl_seconds must be >= 1 or None, got {ttl_seconds!r}")
    ftype = np.dtype(dtype)
    total_users = model.n_users if users is None else int(np.asarray(users).size)
    size = block_rows(model.n_items, ftype.itemsize, memory_budget)

    writer: pq.ParquetWriter | None = None
    final_path: Path | None = None
    tmp_path: Path | None = None
    schema = pa.schema(
        [
            ("user", pa.string()),
            ("rank", pa.int32()),
            ("item", pa.string()),
            ("score", pa.float32() if ftype == np.float32 else pa.float64()),
        ]
    )
    if out_dir is not None:
        directory = Path(out_dir)
        directory.mkdir(parents=True, exist_ok=True)
        final_path = directory / PARQUET_NAME
        tmp_path = directory / f".{PARQUET_NAME}.{os.getpid()}.tmp"
        writer = pq.ParquetWriter(tmp_path, schema, compression="zstd")
    user_ids = pa.array(model.user_ids.tolist(), type=pa.string())
    item_ids = pa.array(model.item_ids.tolist(), type=pa.string())

    compute_s = write_s = 0.0
    n_rows = n_blocks = redis_keys = done = 0
    if redis is not None:  # readers must not trust lists of a run that is not complete
        pipe = redis.pipeline(transaction=False)
        pipe.delete(meta_key(key_prefix, version))
        pipe.execute()
    try:
        blocks = iter_topn_blocks(
            model,
            users,
            n,
            exclude_seen=exclude_seen,
            dtype=ftype,
            memory_budget=memory_budget,
        )
        while True:
            t0 = time.perf_counter()
            block = next(blocks, None)
            t1 = time.perf_counter()
            compute_s += t1 - t0
            if block is None:
                break
            n_blocks += 1
            n_rows += int(block.counts.sum())
            if writer is not None:
                table = _block_table(block, user_ids, item_ids, schema)
                writer.write_table(table, row_group_size=max(1, table.num_rows))
            if redis is not None:
                redis_keys += _write_redis(redis, block, model, key_prefix, version, ttl_seconds)
            write_s += time.perf_counter() - t1
            done += int(block.users.shape[0])
            if progress is not None:
                progress(done, total_users)
        if writer is not None and tmp_path is not None and final_path is not None:
            writer.close()
            writer = None
            os.replace(tmp_path, final_path)
        if redis is not None:
            meta = {
                "version": version,
                "model_id": model_id,
                "n": int(n),
                "exclude_seen": bool(exclude_seen),
                "users": done,
                "computed_at": started_at,
            }
            pipe = redis.pipeline(transaction=False)
            pipe.set(meta_key(key_prefix, version), json.dumps(meta), ex=ttl_seconds)
            pipe.execute()
    finally:
        if writer is not None:
            writer.close()
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()

    return PrecomputeResult(
        n_users=done,
        n_rows=n_rows,
        n_blocks=n_blocks,
        block_size=size,
        parquet_path=final_path,
        redis_keys=redis_keys,
        compute_seconds=compute_s,
        write_seconds=write_s,
        total_seconds=time.perf_counter() - started,
    )
