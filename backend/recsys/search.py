"""Hyperparameter search by k-fold cross-validated RMSE: grid and seeded random search.

Every trial is a full ``crossval.cross_validate`` on the same seeded folds, so trials differ only
by their parameters. The best trial is the one with the lowest mean RMSE (the earliest on a tie).
All trial specifications are checked before the first one runs, so a typo fails at once.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from backend.recsys.algorithms import AlgoSpec
from backend.recsys.crossval import CVResult, cross_validate
from backend.recsys.datasets import Ratings
from backend.recsys.errors import DataError

Progress = Callable[[float, str], None]
MAX_TRIALS = 10_000


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high]."""

    low: float
    high: float


@dataclass(frozen=True)
class LogUniform:
    """A float whose log is uniform on [log low, log high] (for learning rates, regularization)."""

    low: float
    high: float


@dataclass(frozen=True)
class IntRange:
    """An integer drawn uniformly from low..high inclusive."""

    low: int
    high: int


Distribution = Sequence[Any] | Uniform | LogUniform | IntRange


@dataclass(frozen=True)
class Trial:
    """One evaluated configuration (``params`` are the searched values plus the fixed ones)."""

    index: int
    params: dict[str, Any]
    rmse: float
    rmse_std: float
    mae: float
    mpe: float | None
    fit_seconds: float
    wall_seconds: float


@dataclass(frozen=True)
class SearchResult:
    """All trials in the order they ran, the best one, and the search's wall time."""

    algorithm: str
    strategy: Literal["grid", "random"]
    k: int
    seed: int
    trials: tuple[Trial, ...]
    best: Trial
    total_seconds: float


def grid_search(
    ratings: Ratings,
    grid: Mapping[str, Sequence[Any]],
    *,
    algorithm: str = "svd",
    fixed: Mapping[str, Any] | None = None,
    k: int = 5,
    seed: int = 0,
    n_jobs: int = 1,
    progress: Progress | None = None,
) -> SearchResult:
    """Evaluate every combination of ``grid`` (a list of values per parameter)."""
    combos = grid_combos(grid)
    return _run(ratings, "grid", combos, algorithm, fixed, k, seed, n_jobs, progress)


def grid_combos(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``grid``, the last parameter varying fastest."""
    for name, values in grid.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise DataError(f"grid values of {name} must be a non-empty list")
    total = math.prod(len(v) for v in grid.values())
    if total > MAX_TRIALS:
        raise DataError(f"the grid has {total} combinations; at most {MAX_TRIALS} are allowed")
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def random_combos(
    space: Mapping[str, Distribution], n_trials: int, seed: int
) -> list[dict[str, Any]]:
    """``n_trials`` configurations drawn from ``space`` by a generator seeded ``seed``."""
    if not 1 <= n_trials <= MAX_TRIALS:
        raise DataError(f"n_trials={n_trials} must be between 1 and {MAX_TRIALS}")
    rng = np.random.default_rng(seed)
    return [{name: _draw(rng, name, dist) for name, dist in space.items()} for _ in range(n_trials)]


def random_search(
    ratings: Ratings,
    space: Mapping[str, Distribution],
    *,
    n_trials: int,
    algorithm: str = "svd",
    fixed: Mapping[str, Any] | None = None,
    k: int = 5,
    seed: int = 0,
    n_jobs: int = 1,
    progress: Progress | None = None,
) -> SearchResult:
    """Evaluate ``n_trials`` configurations drawn from ``space`` by a generator seeded ``seed``.

    A list means a uniform choice among its values; ``Uniform``, ``LogUniform`` and ``IntRange``
    are continuous or integer ranges.
    """
    combos = random_combos(space, n_trials, seed)
    return _run(ratings, "random", combos, algorithm, fixed, k, seed, n_jobs, progress)


def _draw(rng: np.random.Generator, name: str, dist: Distribution) -> Any:
    if isinstance(dist, Uniform | LogUniform):
        if not dist.low <= dist.high or (isinstance(dist, LogUniform) and dist.low <= 0):
            raise DataError(f"range of {name} needs low <= high (and low > 0 for LogUniform)")
        if isinstance(dist, Uniform):
            return float(rng.uniform(dist.low, dist.high))
        return float(np.exp(rng.uniform(np.log(dist.low), np.log(dist.high))))
    if isinstance(dist, IntRange):
        if dist.low > dist.high:
            raise DataError(f"integer range of {name} must have low <= high")
        return int(rng.integers(dist.low, dist.high + 1))
    if isinstance(dist, str) or not isinstance(dist, Sequence) or len(dist) == 0:
        raise DataError(f"choices of {name} must be a non-empty list or a range")
    value = dist[int(rng.integers(len(dist)))]
    return value.item() if isinstance(value, np.generic) else value


def _run(
    ratings: Ratings,
    strategy: Literal["grid", "random"],
    combos: list[dict[str, Any]],
    algorithm: str,
    fixed: Mapping[str, Any] | None,
    k: int,
    seed: int,
    n_jobs: int,
    progress: Progress | None,
) -> SearchResult:
    started = time.perf_counter()
    specs = [AlgoSpec(algorithm, {**(fixed or {}), **combo}) for combo in combos]
    trials: list[Trial] = []
    for n, spec in enumerate(specs):
        result = cross_validate(ratings, spec, k=k, seed=seed, n_jobs=n_jobs)
        trials.append(_trial(n, spec, result))
        if progress:
            best = min(t.rmse for t in trials)
            progress(
                (n + 1) / len(specs),
                f"trial {n + 1}/{len(specs)}: rmse {trials[-1].rmse:.4f} (best {best:.4f})",
            )
    best_trial = min(trials, key=lambda t: (t.rmse, t.index))
    return SearchResult(
        algorithm=algorithm,
        strategy=strategy,
        k=k,
        seed=seed,
        trials=tuple(trials),
        best=best_trial,
        total_seconds=time.perf_counter() - started,
    )


def _trial(index: int, spec: AlgoSpec, result: CVResult) -> Trial:
    if result.rmse.mean is None or result.mae.mean is None:
        raise DataError("a cross-validation fold had no test ratings")
    return Trial(
        index=index,
        params=dict(spec.params),
        rmse=result.rmse.mean,
        rmse_std=result.rmse.std or 0.0,
        mae=result.mae.mean,
        mpe=result.mpe.mean,
        fit_seconds=result.fit_seconds.mean or 0.0,
        wall_seconds=result.wall_seconds,
    )
