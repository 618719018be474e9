"""Hyperparameter search for implicit models by NDCG@k on a temporal validation split.

RMSE means nothing for a model of implicit feedback, so a trial is scored by ranking: the
interactions are split by ``ranking.interaction_holdout`` (each user's last ``n_test``
interactions held out), every configuration trains on the rest, and its NDCG@k on the held-out
positives decides. The best trial has the highest NDCG (the earliest on a tie). Every trial
shares the split, so trials differ only by their parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from backend.recsys.algorithms import IMPLICIT_ALGORITHMS, AlgoSpec
from backend.recsys.errors import DataError
from backend.recsys.implicit_models import fit_implicit
from backend.recsys.model import FactorModel
from backend.recsys.ranking import interaction_holdout, score_model
from backend.recsys.search import grid_combos

Progress = Callable[[float, str], None]

#: A small grid that moves implicit ALS from its defaults towards the best NDCG on MovieLens.
DEFAULT_ALS_GRID: dict[str, list[Any]] = {
    "factors": [32, 64, 128],
    "regularization": [0.05, 1.0, 10.0],
    "alpha": [0.5, 2.0, 8.0],
}


@dataclass(frozen=True)
class RankingTrial:
    """One configuration and its ranking metrics at k on the validation split."""

    index: int
    params: dict[str, Any]
    ndcg: float
    precision: float
    recall: float
    map: float
    hit_rate: float
    coverage: float
    fit_seconds: float


@dataclass(frozen=True)
class RankingSearch:
    """Every trial in the order it ran, the best one, and the search's wall time."""

    algorithm: str
    strategy: Literal["grid", "random"]
    k: int
    n_test: int
    trials: tuple[RankingTrial, ...]
    best: RankingTrial
    total_seconds: float


def ranking_search(
    interactions: pd.DataFrame,
    combos: Sequence[Mapping[str, Any]],
    *,
    algorithm: str = "implicit_als",
    fixed: Mapping[str, Any] | None = None,
    strategy: Literal["grid", "random"] = "grid",
    n_test: int = 10,
    k: int = 10,
    progress: Progress | None = None,
) -> RankingSearch:
    """Score each configuration (``fixed`` plus one of ``combos``) by NDCG@``k``."""
    if algorithm not in IMPLICIT_ALGORITHMS:
        raise DataError(
            f"{algorithm} is not an implicit algorithm; choose one of "
            f"{', '.join(IMPLICIT_ALGORITHMS)}"
        )
    if not combos:
        raise DataError("give at least one configuration to try")
    started = time.perf_counter()
    specs = [AlgoSpec(algorithm, {**(fixed or {}), **combo}) for combo in combos]
    train, test = interaction_holdout(interactions, n_test)
    relevant = test.loc[test["confidence"] > 0]
    if relevant.empty:
        raise DataError("no held-out interaction is a positive; lower n_test")
    trials: list[RankingTrial] = []
    for n, spec in enumerate(specs):
        fit_started = time.perf_counter()
        model = fit_implicit(train, spec)
        fit_seconds = time.perf_counter() - fit_started
        scores = score_model(model, relevant, k)
        trials.append(
            RankingTrial(index=n, params=dict(spec.params), fit_seconds=fit_seconds, **scores)
        )
        if progress:
            best = max(t.ndcg for t in trials)
            progress(
                (n + 1) / len(specs),
                f"trial {n + 1}/{len(specs)}: ndcg@{k} {trials[-1].ndcg:.4f} (best {best:.4f})",
            )
    best_trial = min(trials, key=lambda t: (-t.ndcg, t.index))
    return RankingSearch(
        algorithm=algorithm,
        strategy=strategy,
        k=k,
        n_test=n_test,
        trials=tuple(trials),
        best=best_trial,
        total_seconds=time.perf_counter() - started,
    )


def tune_implicit_als(
    train: pd.DataFrame,
    grid: Mapping[str, Sequence[Any]] | None = None,
    n_test: int = 10,
    k: int = 10,
    seed: int = 0,
    *,
    fixed: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], FactorModel]:
    """The best implicit-ALS parameters on ``grid`` and the model refitted with them on ``train``.

    The validation split is carved from ``train`` (each user's last ``n_test`` interactions), so
    a test split held out before calling this stays untouched. ``seed`` is the ALS
    ``random_state`` of every trial and of the refit; ``fixed`` holds other parameters.
    """
    held = {**(fixed or {}), "random_state": seed}
    search = ranking_search(
        train, grid_combos(grid or DEFAULT_ALS_GRID), fixed=held, n_test=n_test, k=k
    )
    best = {**held, **search.best.params}
    return best, fit_implicit(train, AlgoSpec("implicit_als", best))
