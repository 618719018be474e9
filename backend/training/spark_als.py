"""The ``als`` algorithm of the training jobs: Spark MLlib ALS on the session the settings name.

With ``data.format == "lake"`` Spark reads the lake itself: the rating events (explicit ALS) or
the interactions the feedback weights make of every event (implicit ALS), so the data never
passes through this process. Other formats are loaded as the other algorithms load them and
handed to Spark as a pandas frame. Every use of the data in one job (the train job's ranking
hold-out, k-fold validation and fit; every trial of a search) reads one persisted frame
(``backend.pipeline.als``, ``backend.pipeline.als_search``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backend.config import Settings
from backend.jobs.context import JobContext
from backend.pipeline.als import (
    ALSParams,
    ALSValidation,
    als_session,
    fit_prepared,
    frame_to_spark,
    prepare,
    tuning_from_settings,
)
from backend.pipeline.als import cross_validate_prepared as _cross_validate
from backend.pipeline.als_search import ALSTrial, holdout_ranking, run_trials
from backend.recsys.algorithms import AlgoSpec
from backend.recsys.interactions import InteractionWeights, from_ratings
from backend.recsys.model import FactorModel
from backend.training.sources import RatingsParams, confine_ratings, load, scaled

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def als_params(spec: AlgoSpec) -> ALSParams:
    """The Spark ALS parameters of an ``als`` spec (defaults filled in)."""
    p = spec.resolved_params()
    return ALSParams(
        rank=int(p["rank"]),
        max_iter=int(p["max_iter"]),
        reg_param=float(p["reg_param"]),
        alpha=float(p["alpha"]),
        nonnegative=bool(p["nonnegative"]),
        implicit=bool(p["implicit"]),
        seed=int(p["seed"] or 0),
    )


def _frame(
    spark: SparkSession,
    data: RatingsParams,
    weights: InteractionWeights,
    implicit: bool,
    settings: Settings,
) -> DataFrame:
    if data.format == "lake":
        from backend.pipeline.interactions import interactions, ratings

        folder = (
            confine_ratings("lake", data.path, settings, field="data.path")
            if data.path
            else settings.lake_dir
        )
        return interactions(spark, folder, weights) if implicit else ratings(spark, folder)
    loaded = load(data, settings)
    frame = from_ratings(loaded, weights) if implicit else loaded.frame
    return frame_to_spark(spark, frame)


MetricRow = tuple[str, int | None, str, float | None]


@dataclass(frozen=True, eq=False)
class SparkTrained:
    """A train job's ALS model, the rows and fingerprint of its data, and its metrics."""

    model: FactorModel
    rows: int
    fingerprint: str
    metrics: dict[str, Any]
    metric_rows: list[MetricRow]


def train_stages(
    ctx: JobContext,
    data: RatingsParams,
    spec: AlgoSpec,
    *,
    weights: InteractionWeights | None = None,
    validate_k: int = 0,
    ranking: tuple[int, int, float] | None = None,
    seed: int = 0,
) -> SparkTrained:
    """The train job's stages for ``als``: load (Spark reads and persists the data; a lake is
    never read by this process), validate_ranking (``ranking`` = (n_test, k, threshold): a
    temporal hold-out, relevant = positive for implicit ALS, rating ≥ threshold for explicit),
    then fit (with ``validate_k`` ≥ 2, k-fold validation first), all over one prepared frame."""
    params = als_params(spec)
    tuning = tuning_from_settings(settings := ctx.settings)
    with ctx.stage("load") as st:
        spark = als_session(settings)
        frame = _frame(spark, data, weights or InteractionWeights(), params.implicit, settings)
        prepared = prepare(frame, "confidence" if params.implicit else "rating", tuning)
        st.rows_out = prepared.rows
        st.extra.update(users=len(prepared.user_ids), items=len(prepared.item_ids), source="spark")
    try:
        metrics: dict[str, Any] = {}
        rows: list[MetricRow] = []
        if ranking is not None:
            n_test, k, threshold = ranking
            with ctx.stage("validate_ranking", rows_in=prepared.rows):
                ctx.progress(0.05, "ranking on a temporal hold-out")
                r = holdout_ranking(
                    prepared, params, tuning, n_test=n_test, top_k=k,
                    threshold=None if params.implicit else threshold,
                )  # fmt: skip
                metrics.update({f"val_{name}": value for name, value in r.items()})
                metrics.update(val_k=k, val_n_test=n_test)
                rows += [(f"ranking:{spec.name}", None, f"{n}@{k}", r[n]) for n in _AT_K]
                rows += [(f"ranking:{spec.name}", None, n, r[n]) for n in ("hit_rate", "coverage")]
        with ctx.stage("fit", rows_in=prepared.rows) as st:
            scaled(ctx.progress, 0.45, 0.5)(0.0, f"training als on {prepared.rows} rows")
            started = time.perf_counter()
            if validate_k >= 2:
                validation = _cross_validate(prepared, params, tuning, k=validate_k, seed=seed)
                metrics.update(validation_metrics(validation), cv_k=validate_k)
            model = fit_prepared(prepared, params, tuning)
            metrics["fit_seconds"] = time.perf_counter() - started
            st.rows_out = model.n_users + model.n_items
        return SparkTrained(model, prepared.rows, prepared.fingerprint(), metrics, rows)
    finally:
        prepared.release()


_AT_K = ("ndcg", "precision", "recall", "map")


def validation_metrics(validation: ALSValidation) -> dict[str, Any]:
    """The folds' mean metrics under ``cv_`` names, as the jobs report them."""
    return {f"cv_{name}": value for name, value in validation.means.items()}


def validate_als(
    data: RatingsParams,
    spec: AlgoSpec,
    settings: Settings,
    *,
    weights: InteractionWeights | None = None,
    k: int = 5,
    seed: int = 0,
) -> tuple[ALSValidation, list[tuple[str, int | None, str, float | None]]]:
    """k-fold validation of ``spec`` (``als``) and its metric rows (per fold, then the mean)."""
    params = als_params(spec)
    tuning = tuning_from_settings(settings)
    spark = als_session(settings)
    frame = _frame(spark, data, weights or InteractionWeights(), params.implicit, settings)
    prepared = prepare(frame, "confidence" if params.implicit else "rating", tuning)
    try:
        validation = _cross_validate(prepared, params, tuning, k=k, seed=seed)
    finally:
        prepared.release()
    rows: list[tuple[str, int | None, str, float | None]] = [
        (spec.name, f.fold, name, value)
        for f in validation.folds
        for name, value in f.metrics.items()
    ]
    rows += [(spec.name, None, name, value) for name, value in validation.means.items()]
    return validation, rows


def search_als(
    data: RatingsParams,
    combos: Sequence[Mapping[str, Any]],
    settings: Settings,
    *,
    fixed: Mapping[str, Any] | None = None,
    weights: InteractionWeights | None = None,
    k: int = 5,
    seed: int = 0,
    n_test: int = 10,
    top_k: int = 10,
    progress: Callable[[float, str], None] | None = None,
) -> list[ALSTrial]:
    """Score ``fixed`` plus each of ``combos`` (``als``) over one prepared Spark frame.

    Implicit trials are scored by NDCG@``top_k`` on each user's last ``n_test`` interactions,
    explicit ones by ``k``-fold RMSE (``backend.pipeline.als_search``).
    """
    candidates = [als_params(AlgoSpec("als", {**(fixed or {}), **combo})) for combo in combos]
    implicit = bool(candidates) and candidates[0].implicit
    tuning = tuning_from_settings(settings)
    spark = als_session(settings)
    frame = _frame(spark, data, weights or InteractionWeights(), implicit, settings)
    prepared = prepare(frame, "confidence" if implicit else "rating", tuning)
    try:
        return run_trials(
            prepared, candidates, tuning, k=k, seed=seed, n_test=n_test, top_k=top_k,
            progress=progress,
        )  # fmt: skip
    finally:
        prepared.release()
