"""Top-N ranking evaluation on a per-user temporal hold-out.

Each user's last ``n_test`` ratings (by timestamp; equal timestamps ordered by row position, the
later row being the later rating) are held out; models train on the rest. Every model ranks the
whole catalog for each evaluated user with the items the user rated in training excluded
(``batch.recommend_many``), and the top ``k`` are scored against the held-out items rated at least
``threshold`` (the relevant ones). Evaluated users are those with at least one relevant held-out
item; metrics are means over them. Held-out items unknown to training still count as relevant
(no model can recommend them, and recall should say so).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backend.recsys import metrics
from backend.recsys.algorithms import AlgoSpec, fit
from backend.recsys.batch import recommend_many
from backend.recsys.datasets import Ratings, fingerprint
from backend.recsys.errors import DataError
from backend.recsys.model import FactorModel

Progress = Callable[[float, str], None]
DEFAULT_SPECS: tuple[AlgoSpec, ...] = (
    AlgoSpec("svd"),
    AlgoSpec("baseline"),
    AlgoSpec("popularity"),
)


@dataclass(frozen=True, eq=False)
class Holdout:
    """Training ratings and each user's held-out latest ratings (same columns as the ratings)."""

    train: Ratings
    test: pd.DataFrame
    n_test: int


@dataclass(frozen=True)
class RankingScores:
    """Mean ranking metrics of one algorithm over the evaluated users."""

    algorithm: str
    params: dict[str, Any]
    precision: float
    recall: float
    ndcg: float
    map: float
    hit_rate: float
    coverage: float
    fit_seconds: float
    rank_seconds: float


@dataclass(frozen=True)
class RankingReport:
    """Ranking evaluation of several algorithms on one hold-out."""

    k: int
    threshold: float
    n_test: int
    n_users_evaluated: int
    n_test_ratings: int
    results: tuple[RankingScores, ...]


def temporal_holdout(ratings: Ratings, n_test: int = 5, *, min_train: int = 1) -> Holdout:
    """Hold out each user's last ``n_test`` ratings.

    Users with fewer than ``n_test + min_train`` ratings keep all of them in training and are not
    evaluated, so every evaluated user has a training history.
    """
    if n_test < 1 or min_train < 1:
        raise DataError(f"n_test={n_test} and min_train={min_train} must both be at least 1")
    frame = ratings.frame
    order = np.lexsort(
        (np.arange(len(frame)), frame["timestamp"].to_numpy(), frame["user"].to_numpy())
    )
    by_time = frame.iloc[order]
    from_end = by_time.groupby("user", sort=False).cumcount(ascending=False).to_numpy()
    count = by_time.groupby("user", sort=False)["item"].transform("size").to_numpy()
    held = (from_end < n_test) & (count >= n_test + min_train)
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[order[held]] = True
    if not is_test.any():
        raise DataError(
            f"no user has {n_test + min_train} ratings, so nothing can be held out; lower n_test"
        )
    train_frame = frame.loc[~is_test].reset_index(drop=True)
    train = Ratings(frame=train_frame, scale=ratings.scale, fingerprint=fingerprint(train_frame))
    return Holdout(train=train, test=frame.loc[is_test].reset_index(drop=True), n_test=n_test)


def evaluate_ranking(
    ratings: Ratings,
    specs: Sequence[AlgoSpec] = DEFAULT_SPECS,
    *,
    n_test: int = 5,
    k: int = 10,
    threshold: float = 4.0,
    progress: Progress | None = None,
) -> RankingReport:
    """Precision, recall, NDCG, MAP and hit rate at ``k`` plus catalog coverage per algorithm."""
    if k < 1:
        raise DataError(f"k={k} must be at least 1")
    holdout = temporal_holdout(ratings, n_test)
    relevant = holdout.test.loc[holdout.test["rating"] >= threshold]
    if relevant.empty:
        raise DataError(
            f"no held-out rating is >= the relevance threshold {threshold:g}; lower the threshold"
        )
    results = []
    for n, spec in enumerate(specs):
        if progress:
            progress(n / len(specs), f"training {spec.name} on the hold-out training set")
        started = time.perf_counter()
        model = fit(holdout.train, spec)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scores = score_model(model, relevant, k)
        results.append(
            RankingScores(
                algorithm=spec.name,
                params=spec.resolved_params(),
                fit_seconds=fit_seconds,
                rank_seconds=time.perf_counter() - started,
                **scores,
            )
        )
    if progress:
        progress(1.0, "ranking evaluation finished")
    return RankingReport(
        k=k,
        threshold=threshold,
        n_test=n_test,
        n_users_evaluated=int(relevant["user"].nunique()),
        n_test_ratings=len(holdout.test),
        results=tuple(results),
    )


def score_model(model: FactorModel, relevant: pd.DataFrame, k: int) -> dict[str, float]:
    """Mean ranking metrics of ``model`` for the users in ``relevant`` (their relevant items)."""
    users = pd.Index(model.user_ids).get_indexer(pd.Index(relevant["user"]))
    items = pd.Index(model.item_ids).get_indexer(pd.Index(relevant["item"]))
    if (users < 0).any():
        raise DataError("every evaluated user must have training ratings")
    eval_users, n_relevant = np.unique(users, return_counts=True)
    top = recommend_many(model, eval_users, k).items
    codes = users.astype(np.int64) * model.n_items + items
    known = codes[items >= 0]
    rec_codes = eval_users[:, None].astype(np.int64) * model.n_items + top
    hits = (top >= 0) & np.isin(rec_codes, known)
    return {
        "precision": float(metrics.precision_at_k(hits, k).mean()),
        "recall": float(metrics.recall_at_k(hits, n_relevant, k).mean()),
        "ndcg": float(metrics.ndcg_at_k(hits, n_relevant, k).mean()),
        "map": float(metrics.average_precision_at_k(hits, n_relevant, k).mean()),
        "hit_rate": float(metrics.hit_rate_at_k(hits, k).mean()),
        "coverage": metrics.catalog_coverage(top, model.n_items),
    }
