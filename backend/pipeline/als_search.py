"""Hyperparameter trials of Spark ALS over one prepared, persisted frame.

Every trial reads the frame ``als.prepare`` persisted once, so the source (a lake, a pandas
frame) is read and indexed a single time however many trials run. Explicit trials are scored by
k-fold RMSE (``als.cross_validate_prepared``); implicit ones by ranking metrics at ``top_k`` on a
temporal hold-out, each user's last ``n_test`` interactions by timestamp (ties: the higher item
index is the later), as ``recsys.ranking.interaction_holdout`` holds them out in pandas. The
split is made once and shared by every trial, so trials differ only by their parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.pipeline.als import (
    ALSParams,
    ALSTuning,
    Prepared,
    cross_validate_prepared,
    implicit_metrics,
    train_and_convert,
)
from backend.recsys.errors import DataError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class ALSTrial:
    """One configuration's metrics (``rmse``/``mae``/``rmse_std`` or ranking metrics at k)."""

    index: int
    params: ALSParams
    metrics: dict[str, float]
    fit_seconds: float


def temporal_split(prepared: Prepared, n_test: int) -> tuple[DataFrame, DataFrame]:
    """(train, test) of ``prepared``: each user's last ``n_test`` rows held out.

    Users with at most ``n_test`` rows keep them all in training and are not evaluated.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if n_test < 1:
        raise DataError(f"n_test={n_test} must be at least 1")
    latest = Window.partitionBy("u").orderBy(F.desc("timestamp"), F.desc("i"))
    marked = prepared.frame.withColumn(
        "held",
        (F.row_number().over(latest) <= n_test)
        & (F.count(F.lit(1)).over(Window.partitionBy("u")) > n_test),
    )
    train = marked.where(~F.col("held")).drop("held")
    test = marked.where(F.col("held")).drop("held")
    return train, test


def holdout_ranking(
    prepared: Prepared,
    params: ALSParams,
    tuning: ALSTuning,
    *,
    n_test: int = 10,
    top_k: int = 10,
    threshold: float | None = None,
) -> dict[str, float]:
    """Ranking metrics at ``top_k`` of ``params`` fitted without each user's last ``n_test``
    rows and scored on them (relevant: positive, or at least ``threshold`` for ratings)."""
    train, test = temporal_split(prepared, n_test)
    model = train_and_convert(train, prepared, params, tuning)
    return implicit_metrics(model, test, top_k, threshold=threshold)


def run_trials(
    prepared: Prepared,
    candidates: Sequence[ALSParams],
    tuning: ALSTuning,
    *,
    k: int = 5,
    seed: int = 0,
    n_test: int = 10,
    top_k: int = 10,
    progress: Progress | None = None,
) -> list[ALSTrial]:
    """Score each of ``candidates`` (all explicit or all implicit) on ``prepared``."""
    if not candidates:
        raise DataError("give at least one configuration to try")
    if len({c.implicit for c in candidates}) > 1:
        raise DataError("als trials must all be implicit or all explicit (hold implicit fixed)")
    implicit = candidates[0].implicit
    train = test = None
    if implicit:
        from pyspark import StorageLevel

        train, test = temporal_split(prepared, n_test)
        if tuning.storage_level != "NONE":
            train = train.persist(getattr(StorageLevel, tuning.storage_level))
    trials: list[ALSTrial] = []
    try:
        for n, params in enumerate(candidates):
            started = time.perf_counter()
            if train is not None and test is not None:
                model = train_and_convert(train, prepared, params, tuning)
                fit_seconds = time.perf_counter() - started
                metrics = implicit_metrics(model, test, top_k)
            else:
                cv = cross_validate_prepared(prepared, params, tuning, k=k, seed=seed)
                fit_seconds = sum(f.fit_seconds for f in cv.folds)
                rmses = [f.metrics["rmse"] for f in cv.folds]
                spread = (sum((r - cv.means["rmse"]) ** 2 for r in rmses) / len(rmses)) ** 0.5
                metrics = {**cv.means, "rmse_std": spread}
            trials.append(ALSTrial(n, params, metrics, fit_seconds))
            if progress:
                progress((n + 1) / len(candidates), _line(trials, len(candidates), top_k))
    finally:
        if train is not None and tuning.storage_level != "NONE":
            train.unpersist()
    return trials


def best_trial(trials: Sequence[ALSTrial]) -> ALSTrial:
    """The highest NDCG (implicit) or lowest RMSE (explicit); the earliest on a tie."""
    if trials[0].params.implicit:
        return min(trials, key=lambda t: (-t.metrics["ndcg"], t.index))
    return min(trials, key=lambda t: (t.metrics["rmse"], t.index))


def _line(trials: list[ALSTrial], total: int, top_k: int) -> str:
    best = best_trial(trials)
    name, metric = ("ndcg", f"ndcg@{top_k}") if best.params.implicit else ("rmse", "rmse")
    last = trials[-1].metrics[name]
    return f"trial {len(trials)}/{total}: {metric} {last:.4f} (best {best.metrics[name]:.4f})"
