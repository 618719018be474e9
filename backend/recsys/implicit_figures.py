"""The implicit-feedback figures the benchmarks quote, as plain functions.

MovieLens 100K (``u.data`` read in place): ratings ≥ 4 are positives, and each user's last 10
interactions by time are held out (``ranking.evaluate_implicit_ranking``). The synthetic figures
use clicks drawn from a known latent model (``synthetic.generate_clicks``). Each function returns
a number; the benchmark prints them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from backend.recsys.algorithms import AlgoSpec
from backend.recsys.datasets import RatingsSource, load_ratings
from backend.recsys.implicit_models import als_confidence, implicit_package
from backend.recsys.implicit_tuning import tune_implicit_als
from backend.recsys.interactions import InteractionWeights, from_events, from_ratings
from backend.recsys.ranking import evaluate_implicit_ranking, interaction_holdout, score_model
from backend.recsys.synthetic import generate_clicks


def ml100k_interactions(folder: Path) -> pd.DataFrame:
    """MovieLens 100K's ratings ≥ 4 as positive interactions (confidence 1)."""
    ratings = load_ratings(RatingsSource("ml-100k", Path(folder)))
    return from_ratings(ratings, InteractionWeights(rating_threshold=4.0))


def ndcg10(interactions: pd.DataFrame, spec: AlgoSpec, n_test: int = 10) -> float:
    """NDCG@10 of ``spec`` on each user's last ``n_test`` interactions."""
    report = evaluate_implicit_ranking(interactions, [spec], n_test=n_test, k=10)
    return report.results[0].ndcg


def ndcg10_popularity(folder: Path) -> float:
    """Popularity's NDCG@10 on MovieLens 100K."""
    return ndcg10(ml100k_interactions(folder), AlgoSpec("popularity"))


def ndcg10_implicit_package(folder: Path, factors: int = 64, seed: int = 0) -> float:
    """The implicit package's ALS (default parameters, ``factors``) NDCG@10 on MovieLens 100K."""
    spec = AlgoSpec("implicit_als", {"factors": factors, "random_state": seed})
    return ndcg10(ml100k_interactions(folder), spec)


def ndcg10_implicit_tuned(
    folder: Path, grid: Mapping[str, Sequence[Any]] | None = None, seed: int = 0
) -> tuple[float, dict[str, Any]]:
    """NDCG@10 on MovieLens 100K of ALS tuned on a validation split carved from the training
    part (``tune_implicit_als``), and the parameters chosen."""
    return tuned_ndcg10(ml100k_interactions(folder), grid, seed)


def tuned_ndcg10(
    interactions: pd.DataFrame, grid: Mapping[str, Sequence[Any]] | None = None, seed: int = 0
) -> tuple[float, dict[str, Any]]:
    """Hold out each user's last 10 interactions, tune ALS on ``grid`` over a validation split
    of the rest (``tune_implicit_als``), and score the refitted best on the held-out part."""
    train, test = interaction_holdout(interactions, 10)
    best, model = tune_implicit_als(train, grid, n_test=10, k=10, seed=seed)
    return score_model(model, test.loc[test["confidence"] > 0], 10)["ndcg"], best


def synthetic_click_interactions(
    impressions_per_user: int = 2000, seed: int = 11, popularity_skew: float = 0.0
) -> pd.DataFrame:
    """Clicks on the demo's latent model (600 users, 400 items, rank 8, seed 11) as
    interactions (click weight 2, no negatives).

    Each user is shown ``impressions_per_user`` items, uniformly by default: popular exposure
    would make the held-out clicks mostly the popular items and test exposure, not taste.
    """
    events, _ = generate_clicks(
        600, 400, impressions_per_user, rank=8, seed=seed, popularity_skew=popularity_skew
    )
    return from_events(events, InteractionWeights())


#: The grid ALS is tuned on for the demo's latent model (its true rank is 8).
SYNTHETIC_GRID: dict[str, list[Any]] = {
    "factors": [4, 8, 16],
    "regularization": [1.0, 10.0, 100.0],
    "alpha": [0.25, 1.0, 4.0],
}


def ndcg10_popularity_synthetic(seed: int = 11) -> float:
    """Popularity's NDCG@10 on the synthetic clicks (last 10 per user held out)."""
    return ndcg10(synthetic_click_interactions(seed=seed), AlgoSpec("popularity"))


def ndcg10_implicit_synthetic(seed: int = 11) -> tuple[float, dict[str, Any]]:
    """NDCG@10 on the synthetic clicks of ALS tuned on ``SYNTHETIC_GRID`` over a validation
    split carved from the training part (``tuned_ndcg10``), and the parameters chosen."""
    return tuned_ndcg10(synthetic_click_interactions(seed=seed), SYNTHETIC_GRID)


def random_interactions(
    n_users: int, n_items: int, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random (user, item) interactions as two index arrays: users uniform, items by a
    Zipf-like popularity (exponent 0.8) over a seeded random order of the items."""
    rng = np.random.default_rng(seed)
    weights = (rng.permutation(n_items) + 1.0) ** -0.8
    users = rng.integers(0, n_users, n)
    items = rng.choice(n_items, size=n, p=weights / weights.sum())
    return users, items


def scale_implicit_package_s(
    n_users: int = 1_000_000,
    n_items: int = 100_000,
    n_interactions: int = 20_000_000,
    *,
    factors: int = 64,
    iterations: int = 10,
    num_threads: int = 0,
    seed: int = 0,
) -> float:
    """Seconds the implicit package's ALS takes to fit ``random_interactions`` of that size
    (repeated pairs add up). Only the fit is timed (float32, conjugate gradient,
    ``num_threads`` 0 = all cores)."""
    users, items = random_interactions(n_users, n_items, n_interactions, seed)
    matrix = sp.csr_matrix(
        (np.ones(n_interactions, dtype=np.float32), (users, items)), shape=(n_users, n_items)
    )
    matrix.sum_duplicates()
    matrix.data = als_confidence(matrix.data.astype(np.float64), 1.0).astype(np.float32)
    als_class = implicit_package("implicit.cpu.als").AlternatingLeastSquares
    with threadpool_limits(1, "blas"):
        als = als_class(
            factors=factors, iterations=iterations, num_threads=num_threads, random_state=seed
        )
        started = time.perf_counter()
        als.fit(matrix, show_progress=False)
        return time.perf_counter() - started
