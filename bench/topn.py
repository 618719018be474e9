"""All-users top-10: Recflow's precompute path against scikit-surprise's documented recipe.

Prints one JSON line. Figures (seconds unless named otherwise):

* ``recflow_s``: median of warm runs of ``precompute_topn`` (all ml-100k users, top-10, float64,
  Parquet written to a temporary directory) for surprise's default SVD (``random_state=0``).
* ``surprise_recipe_s``: median of runs of the recipe from surprise's FAQ:
  ``trainset.build_anti_testset()`` + ``algo.test(...)`` + per-user sort into a top-10.
* ``speedup``: ``surprise_recipe_s / recflow_s``.
* ``identical``: true iff every user's list equals the list from surprise's own predictions made
  with ``clip=False`` (``algo.test`` clips estimates to the rating scale, which creates ties at
  5.0 that the documented sort leaves in input order) and sorted by (−estimate, inner item id),
  the package's ranking rule. ``surprise_unclipped_s`` times that variant once.
  ``clipped_recipe_identical_share`` is the share of users whose documented (clipped) list is
  identical anyway.
* ``recommend_ms`` / ``fold_in_ms``: median latency of one user's top-10 and of one fold-in.
* ``synthetic_s`` / ``synthetic_peak_rss_mb``: all-users top-10 of a random float32 model
  (default 1M users × 50k items × 64 factors, 10 seen items per user), blocked within the memory
  budget and written to Parquet, run in a child process so its peak RSS is its own.

* ``serve_computed_ms`` / ``serve_precomputed_ms`` (with a Redis: ``--redis URL``, default
  ``RECFLOW_REDIS_URL``): one recommendation answer's work on each serving path, per request,
  sequential, over every ml-100k user (surprise's SVD, top-10): computed in memory by
  ``backend.serving.service.recommend_for``, against read from the user's precomputed Redis list
  (``PrecomputedReader.lookup``: one ``MGET`` over loopback with ``redis.asyncio``, decoded,
  checked) and rendered; the lists are written by ``precompute_topn`` under a key prefix of
  their own, removed at the end. ``serve_paths_identical``: the two paths' items agree.

Usage: ``python bench/topn.py [--skip-synthetic] [--runs 5] [--surprise-runs 3] [--redis URL]
[--paths-only]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.recsys.batch import DEFAULT_MEMORY_BUDGET  # noqa: E402
from backend.recsys.foldin import fold_in  # noqa: E402
from backend.recsys.model import FactorModel  # noqa: E402
from backend.recsys.precompute import precompute_topn  # noqa: E402
from backend.recsys.topn import recommend  # noqa: E402

ML100K = REPO.parent / "shared" / "data" / "ml-100k"
N = 10


def _median_time(fn: Any, runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def _surprise_recipe(algo: Any, trainset: Any) -> dict[str, list[str]]:
    # Verbatim shape of the FAQ's get_top_n: anti-testset, algo.test, sort by estimate.
    testset = trainset.build_anti_testset()
    predictions = algo.test(testset)
    top_n: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for uid, iid, _true_r, est, _ in predictions:
        top_n[uid].append((iid, est))
    for uid, user_ratings in top_n.items():
        user_ratings.sort(key=lambda x: x[1], reverse=True)
        top_n[uid] = user_ratings[:N]
    return {uid: [iid for iid, _ in lst] for uid, lst in top_n.items()}


def _surprise_unclipped(algo: Any, trainset: Any) -> dict[str, list[str]]:
    testset = trainset.build_anti_testset()
    per_user: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for uid, iid, r_ui in testset:
        est = algo.predict(uid, iid, r_ui, clip=False).est
        per_user[uid].append((-est, trainset.to_inner_iid(iid), iid))
    return {uid: [iid for *_, iid in sorted(lst)[:N]] for uid, lst in per_user.items()}


def _parquet_lists(path: Path) -> dict[str, list[str]]:
    import pyarrow.parquet as pq

    frame = pq.read_table(path).to_pandas().sort_values(["user", "rank"], kind="stable")
    return {str(u): g["item"].tolist() for u, g in frame.groupby("user", sort=False)}


def bench_ml100k(runs: int, surprise_runs: int) -> dict[str, Any]:
    from surprise import SVD, Dataset, Reader

    from backend.recsys.surprise_adapter import factor_model_from_surprise

    data = Dataset.load_from_file(str(ML100K / "u.data"), reader=Reader("ml-100k"))
    trainset = data.build_full_trainset()
    algo = SVD(random_state=0).fit(trainset)
    model = factor_model_from_surprise(algo, trainset, algorithm="svd", params={})

    with tempfile.TemporaryDirectory() as tmp:
        precompute_topn(model, N, out_dir=tmp)  # warm-up
        recflow_s, result = _median_time(lambda: precompute_topn(model, N, out_dir=tmp), runs)
        ours = _parquet_lists(result.parquet_path)

    surprise_s, clipped = _median_time(lambda: _surprise_recipe(algo, trainset), surprise_runs)
    unclipped_s, unclipped = _median_time(lambda: _surprise_unclipped(algo, trainset), 1)

    users = [str(u) for u in model.user_ids]
    identical = all(ours.get(u) == unclipped.get(u) for u in users)
    clipped_share = sum(ours.get(u) == clipped.get(u) for u in users) / len(users)

    sample = range(0, model.n_users, 7)
    rec_s, _ = _median_time(lambda: [recommend(model, u, N) for u in sample], 3)
    own = [{str(trainset.to_raw_iid(i)): float(r) for i, r in trainset.ur[u]} for u in sample]
    fold_s, _ = _median_time(lambda: [fold_in(model, r, reg=5.0) for r in own], 3)
    return {
        "users": model.n_users,
        "items": model.n_items,
        "recflow_s": round(recflow_s, 5),
        "surprise_recipe_s": round(surprise_s, 3),
        "surprise_unclipped_s": round(unclipped_s, 3),
        "speedup": round(surprise_s / recflow_s, 1),
        "identical": identical,
        "clipped_recipe_identical_share": round(clipped_share, 4),
        "recommend_ms": round(1000 * rec_s / len(sample), 4),
        "fold_in_ms": round(1000 * fold_s / len(own), 4),
    }


def bench_serving_paths(redis_url: str, runs: int) -> dict[str, Any]:
    """Per-request cost of computing an answer against reading its precomputed list."""
    import asyncio
    from datetime import UTC, datetime

    import redis
    from redis.asyncio import Redis
    from surprise import SVD, Dataset, Reader

    from backend.recsys.indexes import IdIndex
    from backend.recsys.surprise_adapter import factor_model_from_surprise
    from backend.serving.model import ServingModel
    from backend.serving.precomputed import PrecomputedReader
    from backend.serving.service import ranked, recommend_for

    data = Dataset.load_from_file(str(ML100K / "u.data"), reader=Reader("ml-100k"))
    trainset = data.build_full_trainset()
    algo = SVD(random_state=0).fit(trainset)
    model = factor_model_from_surprise(algo, trainset, algorithm="svd", params={})
    sm = ServingModel(
        model_id=0,
        version="bench",
        model=model,
        ids=IdIndex.from_model(model),
        titles=None,
        categories=None,
        loaded_at=datetime.now(UTC),
    )
    users = [str(u) for u in model.user_ids.tolist()]
    prefix = f"recflow:bench-topn-{os.getpid()}"
    sync = redis.Redis.from_url(redis_url)
    precompute_topn(model, N, redis=sync, version="bench", key_prefix=prefix)

    def computed() -> list[list[dict[str, Any]]]:
        return [recommend_for(sm, u, N, True, None, None)["items"] for u in users]

    async def read() -> tuple[list[float], list[list[dict[str, Any]]]]:
        reader = PrecomputedReader(Redis.from_url(redis_url), prefix, 3600.0, 1.0, 5.0)
        times: list[float] = []
        out: list[list[dict[str, Any]]] = []
        try:
            for _ in range(runs):
                out = []
                t0 = time.perf_counter()
                for u in users:
                    top = await reader.lookup(sm, u, N, True)
                    if top is None:
                        raise RuntimeError(f"no valid precomputed list for user {u}")
                    out.append(ranked(sm, top))
                times.append(time.perf_counter() - t0)
        finally:
            await reader.close()
        return times, out

    try:
        compute_s, want = _median_time(computed, runs)
        read_times, got = asyncio.run(read())
    finally:
        keys = list(sync.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            sync.delete(*keys)
    return {
        "serve_computed_ms": round(1000 * compute_s / len(users), 4),
        "serve_precomputed_ms": round(1000 * statistics.median(read_times) / len(users), 4),
        "serve_paths_identical": got == want,
    }


def synthetic_model(n_users: int, n_items: int, k: int, seed: int) -> FactorModel:
    """A random model of the given size (float32 draws), 10 seen items per user."""
    rng = np.random.default_rng(seed)
    seen = 10
    return FactorModel(
        user_ids=np.char.mod("u%d", np.arange(n_users)),
        item_ids=np.char.mod("i%d", np.arange(n_items)),
        global_mean=3.5,
        user_bias=rng.standard_normal(n_users, dtype=np.float32).astype(np.float64),
        item_bias=rng.standard_normal(n_items, dtype=np.float32).astype(np.float64),
        user_factors=rng.standard_normal((n_users, k), dtype=np.float32).astype(np.float64),
        item_factors=rng.standard_normal((n_items, k), dtype=np.float32).astype(np.float64),
        seen_indptr=np.arange(0, (n_users + 1) * seen, seen, dtype=np.int64),
        seen_indices=np.sort(
            rng.integers(0, n_items, size=(n_users, seen), dtype=np.int64), axis=1
        ).reshape(-1),
        item_popularity=np.zeros(n_items, dtype=np.int64),
    )


def bench_synthetic(n_users: int, n_items: int, k: int, memory_budget: int) -> dict[str, Any]:
    model = synthetic_model(n_users, n_items, k, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = precompute_topn(
            model, N, out_dir=tmp, dtype=np.float32, memory_budget=memory_budget
        )
        elapsed = time.perf_counter() - t0
        size_mb = result.parquet_path.stat().st_size / 2**20 if result.parquet_path else 0.0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "synthetic_shape": [n_users, n_items, k],
        "synthetic_s": round(elapsed, 2),
        "synthetic_compute_s": round(result.compute_seconds, 2),
        "synthetic_write_s": round(result.write_seconds, 2),
        "synthetic_rows": result.n_rows,
        "synthetic_block_users": result.block_size,
        "synthetic_memory_budget_mb": round(memory_budget / 2**20, 1),
        "synthetic_model_mb": round(
            (model.user_factors.nbytes + model.item_factors.nbytes) / 2**20, 1
        ),
        "synthetic_parquet_mb": round(size_mb, 1),
        "synthetic_peak_rss_mb": round(peak_kb / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--synthetic-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--surprise-runs", type=int, default=3)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--memory-budget", type=int, default=DEFAULT_MEMORY_BUDGET)
    parser.add_argument(
        "--redis",
        default=os.environ.get("RECFLOW_REDIS_URL", ""),
        metavar="URL",
        help="Redis for the serving-paths figures (default: RECFLOW_REDIS_URL; none: skipped)",
    )
    parser.add_argument(
        "--paths-only", action="store_true", help="only the serving-paths figures (needs --redis)"
    )
    args = parser.parse_args()
    if args.paths_only and not args.redis:
        parser.error("--paths-only needs --redis or RECFLOW_REDIS_URL")

    if args.synthetic_only:
        print(json.dumps(bench_synthetic(args.users, args.items, args.factors, args.memory_budget)))
        return

    figures: dict[str, Any] = {"bench": "topn", "n": N}
    if (ML100K / "u.data").is_file():
        if not args.paths_only:
            figures.update(bench_ml100k(args.runs, args.surprise_runs))
        if args.redis:
            figures.update(bench_serving_paths(args.redis, args.runs))
    else:
        figures["skipped"] = f"MovieLens 100K not found at {ML100K}"
    if not args.skip_synthetic and not args.paths_only:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--synthetic-only",
                f"--users={args.users}",
                f"--items={args.items}",
                f"--factors={args.factors}",
                f"--memory-budget={args.memory_budget}",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        figures.update(json.loads(child.stdout.strip().splitlines()[-1]))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
