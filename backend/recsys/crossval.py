"""k-fold cross-validation of rating prediction: RMSE, MAE and MPE per fold and mean ± std.

Two paths over the same seeded folds:

* ``cross_validate_surprise`` runs ``surprise.model_selection.cross_validate`` (RMSE, MAE), the
  reference that published numbers come from.
* ``cross_validate`` is our loop over identical folds (``kfold.kfold_splits``). Each fold trains
  the surprise algorithm, converts it to the serving ``FactorModel`` and scores the clipped
  estimates of that model, so it measures what will be served. Its RMSE and MAE equal surprise's
  to floating-point rounding; it adds MPE and timings.

Folds run in parallel worker processes with ``n_jobs > 1``; every fold is seeded, so the result
is the same as a sequential run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from surprise.model_selection import cross_validate as surprise_cross_validate

from backend.recsys import metrics
from backend.recsys.algorithms import (
    IMPLICIT_ALGORITHMS,
    AlgoSpec,
    build_trainset,
    make_algo,
    surprise_dataset,
)
from backend.recsys.datasets import Ratings
from backend.recsys.errors import DataError
from backend.recsys.kfold import kfold_splits, surprise_kfold
from backend.recsys.predict import predict_ratings
from backend.recsys.surprise_adapter import factor_model_from_surprise

Progress = Callable[[float, str], None]
DEFAULT_BASELINES: tuple[AlgoSpec, ...] = (AlgoSpec("global_mean"), AlgoSpec("baseline"))


@dataclass(frozen=True)
class Summary:
    """Mean and population standard deviation (ddof=0, as surprise prints) over folds.

    ``None`` when no fold had a value (e.g. MPE on data made only of zero ratings).
    """

    mean: float | None
    std: float | None

    @staticmethod
    def of(values: Sequence[float | None]) -> Summary:
        present = np.array([v for v in values if v is not None], dtype=np.float64)
        if present.size == 0:
            return Summary(None, None)
        return Summary(float(present.mean()), float(present.std()))


@dataclass(frozen=True)
class FoldScore:
    """One fold: errors on its test ratings, sizes, and seconds spent training and testing."""

    fold: int
    rmse: float | None
    mae: float | None
    mpe: float | None
    mpe_zero_ratings_excluded: int
    n_train: int
    n_test: int
    fit_seconds: float
    test_seconds: float


@dataclass(frozen=True)
class CVResult:
    """k-fold result of one algorithm: per-fold scores and their summaries."""

    algorithm: str
    params: dict[str, Any]
    k: int
    seed: int
    n_jobs: int
    folds: tuple[FoldScore, ...]
    rmse: Summary
    mae: Summary
    mpe: Summary
    fit_seconds: Summary
    test_seconds: Summary
    wall_seconds: float


@dataclass(frozen=True)
class SurpriseCVResult:
    """``surprise.model_selection.cross_validate`` output, per fold."""

    algorithm: str
    rmse: tuple[float, ...]
    mae: tuple[float, ...]
    fit_seconds: tuple[float, ...]
    test_seconds: tuple[float, ...]
    wall_seconds: float


@dataclass(frozen=True)
class CrossvalReport:
    """The model, its baselines on the same folds, and (optionally) surprise's reference run.

    ``max_abs_difference`` is the largest per-fold |ours − surprise| over RMSE and MAE.
    """

    model: CVResult
    baselines: tuple[CVResult, ...]
    surprise: SurpriseCVResult | None
    max_abs_difference: float | None


def cross_validate(
    ratings: Ratings,
    spec: AlgoSpec,
    *,
    k: int = 5,
    seed: int = 0,
    n_jobs: int = 1,
    progress: Progress | None = None,
) -> CVResult:
    """k-fold RMSE, MAE and MPE of ``spec`` on ``ratings`` over surprise's seeded folds."""
    if spec.name == "popularity":
        raise DataError("popularity predicts no ratings; evaluate it with ranking.evaluate_ranking")
    if spec.name in IMPLICIT_ALGORITHMS:
        raise DataError(
            f"{spec.name} predicts no ratings, so it has no RMSE; evaluate it with "
            "ranking.evaluate_implicit_ranking"
        )
    if n_jobs == 0:
        raise DataError("n_jobs must be a positive number of processes or -1 for all cores")
    start = time.perf_counter()
    folds = kfold_splits(ratings.n_ratings, k, seed)
    frame = ratings.frame
    user_codes, user_names = pd.factorize(frame["user"])
    item_codes, item_names = pd.factorize(frame["item"])
    columns = _Columns(
        users=np.asarray(user_names, dtype=object),
        items=np.asarray(item_names, dtype=object),
        user_codes=user_codes.astype(np.int64),
        item_codes=item_codes.astype(np.int64),
        values=frame["rating"].to_numpy(np.float64),
        scale=ratings.scale,
    )
    jobs = (delayed(_score_fold)(spec, columns, f.index, f.train, f.test) for f in folds)
    scores: list[FoldScore] = []
    for score in Parallel(n_jobs=n_jobs, return_as="generator")(jobs):
        scores.append(score)
        if progress:
            progress(
                len(scores) / k, f"{spec.name} fold {score.fold + 1}/{k}: rmse {score.rmse:.4f}"
            )
    return CVResult(
        algorithm=spec.name,
        params=spec.resolved_params(),
        k=k,
        seed=seed,
        n_jobs=n_jobs,
        folds=tuple(scores),
        rmse=Summary.of([s.rmse for s in scores]),
        mae=Summary.of([s.mae for s in scores]),
        mpe=Summary.of([s.mpe for s in scores]),
        fit_seconds=Summary.of([s.fit_seconds for s in scores]),
        test_seconds=Summary.of([s.test_seconds for s in scores]),
        wall_seconds=time.perf_counter() - start,
    )


def cross_validate_surprise(
    ratings: Ratings, spec: AlgoSpec, *, k: int = 5, seed: int = 0, n_jobs: int = 1
) -> SurpriseCVResult:
    """RMSE and MAE per fold from ``surprise.model_selection.cross_validate`` on the same folds."""
    start = time.perf_counter()
    kfold_splits(ratings.n_ratings, k, seed)  # same argument checks and messages as our loop
    out = surprise_cross_validate(
        make_algo(spec),
        surprise_dataset(ratings),
        measures=["rmse", "mae"],
        cv=surprise_kfold(k, seed),
        n_jobs=n_jobs,
    )
    return SurpriseCVResult(
        algorithm=spec.name,
        rmse=tuple(float(x) for x in out["test_rmse"]),
        mae=tuple(float(x) for x in out["test_mae"]),
        fit_seconds=tuple(float(x) for x in out["fit_time"]),
        test_seconds=tuple(float(x) for x in out["test_time"]),
        wall_seconds=time.perf_counter() - start,
    )


def validate(
    ratings: Ratings,
    spec: AlgoSpec,
    *,
    k: int = 5,
    seed: int = 0,
    n_jobs: int = 1,
    baselines: Sequence[AlgoSpec] = DEFAULT_BASELINES,
    with_surprise: bool = False,
    progress: Progress | None = None,
) -> CrossvalReport:
    """Cross-validate ``spec`` and each baseline on the same folds.

    With ``with_surprise`` the model is also run through surprise's ``cross_validate`` and the
    largest per-fold difference is reported (it should be below 1e-9).
    """
    runs = [spec, *baselines]
    steps = len(runs) + (1 if with_surprise else 0)
    results: list[CVResult] = []
    for n, run in enumerate(runs):
        inner = _scaled(progress, n / steps, 1 / steps)
        results.append(cross_validate(ratings, run, k=k, seed=seed, n_jobs=n_jobs, progress=inner))
    reference: SurpriseCVResult | None = None
    difference: float | None = None
    if with_surprise:
        if progress:
            progress(len(runs) / steps, "running surprise's cross_validate for reference")
        reference = cross_validate_surprise(ratings, spec, k=k, seed=seed, n_jobs=n_jobs)
        ours = results[0].folds
        difference = max(
            max(abs((f.rmse or 0.0) - r), abs((f.mae or 0.0) - m))
            for f, r, m in zip(ours, reference.rmse, reference.mae, strict=True)
        )
    if progress:
        progress(1.0, "cross-validation finished")
    return CrossvalReport(
        model=results[0],
        baselines=tuple(results[1:]),
        surprise=reference,
        max_abs_difference=difference,
    )


@dataclass(frozen=True, eq=False)
class _Columns:
    """The ratings as compact arrays; numeric arrays are memory-mapped into worker processes."""

    users: np.ndarray
    items: np.ndarray
    user_codes: np.ndarray
    item_codes: np.ndarray
    values: np.ndarray
    scale: tuple[float, float]


def _score_fold(
    spec: AlgoSpec, cols: _Columns, index: int, train: np.ndarray, test: np.ndarray
) -> FoldScore:
    trainset = build_trainset(
        cols.users[cols.user_codes[train]],
        cols.items[cols.item_codes[train]],
        cols.values[train],
        cols.scale,
    )
    algo = make_algo(spec)
    started = time.perf_counter()
    algo.fit(trainset)
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    model = factor_model_from_surprise(
        algo, trainset, algorithm=spec.name, params=spec.resolved_params()
    )
    true = cols.values[test]
    est = predict_ratings(
        model,
        cols.users[cols.user_codes[test]],
        cols.items[cols.item_codes[test]],
        fallback=float(trainset.global_mean),
    )
    rmse, mae, mpe = metrics.rmse(true, est), metrics.mae(true, est), metrics.mpe(true, est)
    test_seconds = time.perf_counter() - started
    return FoldScore(
        fold=index,
        rmse=rmse,
        mae=mae,
        mpe=mpe,
        mpe_zero_ratings_excluded=metrics.zero_ratings(true),
        n_train=int(train.size),
        n_test=int(test.size),
        fit_seconds=fit_seconds,
        test_seconds=test_seconds,
    )


def _scaled(progress: Progress | None, offset: float, width: float) -> Progress | None:
    if progress is None:
        return None
    outer = progress

    def inner(fraction: float, message: str) -> None:
        outer(offset + width * fraction, message)

    return inner
