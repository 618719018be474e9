"""Top-N ranking evaluation on a per-user temporal hold-out.

Each user's last ``n_test`` ratings (by timestamp; equal timestamps ordered by row position, the
later row being the later rating) are held out; models train on the rest. Every model ranks the
whole catalog for each evaluated user with the items the user rated in training excluded
(``batch.recommend_many``), and the top ``k`` are scored against the held-out items rated at least
``threshold`` (the relevant ones). Evaluated users are those with at least one relevant held-out
item; metrics are means over them. Held-out items unknown to training still count as relevant
(no model can recommend them, and recall should say so).

Implicit feedback is evaluated the same way on interactions (``evaluate_implicit_ranking``):
each user's last ``n_test`` interactions are held out and the relevant ones are the positives
among them (confidence > 0). On ratings, implicit algorithms (``implicit_als``,
``item_knn``) train on the training ratings at or above ``threshold`` as positives.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from backend.recsys import metrics
from backend.recsys.algorithms import IMPLICIT_ALGORITHMS, AlgoSpec, fit
from backend.recsys.batch import recommend_many
from backend.recsys.datasets import Ratings, fingerprint
from backend.recsys.errors import DataError
from backend.recsys.implicit_models import fit_implicit
from backend.recsys.interactions import InteractionWeights, check_interactions, from_ratings
from backend.recsys.model import FactorModel

Progress = Callable[[float, str], None]
DEFAULT_SPECS: tuple[AlgoSpec, ...] = (
    AlgoSpec("svd"),
    AlgoSpec("baseline"),
    AlgoSpec("popularity"),
)
#: The baselines an implicit model is compared with.
IMPLICIT_BASELINES: tuple[AlgoSpec, ...] = (AlgoSpec("popularity"), AlgoSpec("item_knn"))


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
    frame = ratings.frame
    is_test = last_n_per_user(frame, n_test, min_train=min_train, what="ratings")
    train_frame = frame.loc[~is_test].reset_index(drop=True)
    train = Ratings(frame=train_frame, scale=ratings.scale, fingerprint=fingerprint(train_frame))
    return Holdout(train=train, test=frame.loc[is_test].reset_index(drop=True), n_test=n_test)


def interaction_holdout(
    interactions: pd.DataFrame, n_test: int = 10, *, min_train: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): each user's last ``n_test`` interactions held out, as ``temporal_holdout``
    holds out ratings (same order, same rule for users with too few)."""
    frame = check_interactions(interactions)
    is_test = last_n_per_user(frame, n_test, min_train=min_train, what="interactions")
    return (
        frame.loc[~is_test].reset_index(drop=True),
        frame.loc[is_test].reset_index(drop=True),
    )


def last_n_per_user(
    frame: pd.DataFrame, n_test: int, *, min_train: int = 1, what: str = "rows"
) -> npt.NDArray[np.bool_]:
    """Mask of each user's last ``n_test`` rows by ``timestamp`` (ties: the later row is later).

    Users with fewer than ``n_test + min_train`` rows keep them all (mask False).
    """
    if n_test < 1 or min_train < 1:
        raise DataError(f"n_test={n_test} and min_train={min_train} must both be at least 1")
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
            f"no user has {n_test + min_train} {what}, so nothing can be held out; lower n_test"
        )
    return is_test


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
        fitter = functools.partial(_fit_on_ratings, holdout.train, spec, threshold)
        results.append(_scored(spec, fitter, relevant, k))
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


def evaluate_implicit_ranking(
    interactions: pd.DataFrame,
    specs: Sequence[AlgoSpec],
    *,
    n_test: int = 10,
    k: int = 10,
    progress: Progress | None = None,
) -> RankingReport:
    """Ranking metrics at ``k`` of implicit models on each user's last ``n_test`` interactions.

    The relevant items are the held-out positives; ``threshold`` in the report is 0 (relevant
    when confidence > 0) and ``n_test_ratings`` counts the held-out interactions. Baselines are
    specs like any other (``IMPLICIT_BASELINES``).
    """
    if k < 1:
        raise DataError(f"k={k} must be at least 1")
    train, test = interaction_holdout(interactions, n_test)
    relevant = test.loc[test["confidence"] > 0]
    if relevant.empty:
        raise DataError("no held-out interaction is a positive; lower n_test or add interactions")
    results = []
    for n, spec in enumerate(specs):
        if progress:
            progress(n / len(specs), f"training {spec.name} on the hold-out training set")
        results.append(_scored(spec, functools.partial(fit_implicit, train, spec), relevant, k))
    if progress:
        progress(1.0, "ranking evaluation finished")
    return RankingReport(
        k=k,
        threshold=0.0,
        n_test=n_test,
        n_users_evaluated=int(relevant["user"].nunique()),
        n_test_ratings=len(test),
        results=tuple(results),
    )


def _fit_on_ratings(train: Ratings, spec: AlgoSpec, threshold: float) -> FactorModel:
    if spec.name in IMPLICIT_ALGORITHMS and spec.name != "popularity":
        positives = from_ratings(train, InteractionWeights(rating_threshold=threshold))
        return fit_implicit(positives, spec)
    return fit(train, spec)


def _scored(
    spec: AlgoSpec, train: Callable[[], FactorModel], relevant: pd.DataFrame, k: int
) -> RankingScores:
    started = time.perf_counter()
    model = train()
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    implicit = spec.name in IMPLICIT_ALGORITHMS and spec.name != "popularity"
    scores = score_model(model, relevant, k, unknown_users_miss=implicit)
    return RankingScores(
        algorithm=spec.name,
        params=spec.resolved_params(),
        fit_seconds=fit_seconds,
        rank_seconds=time.perf_counter() - started,
        **scores,
    )


def score_model(
    model: FactorModel, relevant: pd.DataFrame, k: int, *, unknown_users_miss: bool = False
) -> dict[str, float]:
    """Mean ranking metrics of ``model`` for the users in ``relevant`` (their relevant items).

    A user the model does not know is an error, or with ``unknown_users_miss`` a user whose
    list holds no hit (an implicit model trained on positives only never saw a user whose
    training ratings were all low, and still owes that user a list).
    """
    users = pd.Index(model.user_ids).get_indexer(pd.Index(relevant["user"]))
    items = pd.Index(model.item_ids).get_indexer(pd.Index(relevant["item"]))
    missing = 0
    if (users < 0).any():
        if not unknown_users_miss:
            raise DataError("every evaluated user must have training ratings")
        missing = int(relevant.loc[users < 0, "user"].nunique())
        items = items[users >= 0]
        users = users[users >= 0]
    eval_users, n_relevant = np.unique(users, return_counts=True)
    top = recommend_many(model, eval_users, k).items
    codes = users.astype(np.int64) * model.n_items + items
    known = codes[items >= 0]
    rec_codes = eval_users[:, None].astype(np.int64) * model.n_items + top
    hits = (top >= 0) & np.isin(rec_codes, known)

    def mean(values: npt.NDArray[np.float64]) -> float:
        return float(values.sum() / (values.size + missing)) if values.size + missing else 0.0

    return {
        "precision": mean(metrics.precision_at_k(hits, k)),
        "recall": mean(metrics.recall_at_k(hits, n_relevant, k)),
        "ndcg": mean(metrics.ndcg_at_k(hits, n_relevant, k)),
        "map": mean(metrics.average_precision_at_k(hits, n_relevant, k)),
        "hit_rate": mean(metrics.hit_rate_at_k(hits, k)),
        "coverage": metrics.catalog_coverage(top, model.n_items),
    }
