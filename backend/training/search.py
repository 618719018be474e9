"""``search``: hyperparameter search (grid or seeded random) scored by k-fold CV RMSE.

An implicit algorithm (``implicit_als``) has no RMSE: its trials are scored by NDCG@k on each
user's last ``ranking.n_test`` interactions (``recsys.implicit_tuning``), and the best is the
highest. Spark ALS (``als``) runs every trial over one prepared Spark frame
(``training.spark_als.search_als``): implicit ALS is scored by that hold-out NDCG@k, explicit ALS
by k-fold RMSE.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from backend.db.session import session_scope
from backend.jobs.context import JobContext
from backend.jobs.kind import JobKind
from backend.jobs.params import (
    Folds,
    HyperValue,
    JobParams,
    NJobs,
    at_most,
    context_settings,
    custom_error,
)
from backend.pipeline.als_search import best_trial
from backend.recsys.implicit_tuning import ranking_search
from backend.recsys.search import (
    MAX_TRIALS,
    IntRange,
    LogUniform,
    Uniform,
    grid_combos,
    grid_search,
    random_combos,
    random_search,
)
from backend.registry import repository as repo
from backend.training.crossval import RankingParams
from backend.training.feedback import FeedbackParams, is_implicit, load_interactions
from backend.training.sources import RatingsParams, check_hyperparameters, load, scaled


class Distribution(JobParams):
    dist: Literal["uniform", "loguniform", "int"]
    low: float
    high: float

    @model_validator(mode="after")
    def _range(self) -> Distribution:
        if not self.low <= self.high:
            raise ValueError(f"low ({self.low:g}) must not be above high ({self.high:g})")
        if self.dist == "loguniform" and self.low <= 0:
            raise ValueError("a loguniform range needs low > 0")
        if self.dist == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an int range needs whole-number low and high")
        return self

    def ends(self) -> tuple[HyperValue, HyperValue]:
        """The range's two ends as the values a trial could take."""
        if self.dist == "int":
            return int(self.low), int(self.high)
        return self.low, self.high

    def to_core(self) -> Uniform | LogUniform | IntRange:
        if self.dist == "uniform":
            return Uniform(self.low, self.high)
        if self.dist == "loguniform":
            return LogUniform(self.low, self.high)
        return IntRange(int(self.low), int(self.high))


class SearchParams(JobParams):
    data: RatingsParams = Field(default_factory=RatingsParams)
    algorithm: Literal["svd", "svdpp", "baseline", "implicit_als", "als"] = "svd"
    strategy: Literal["grid", "random"] = "grid"
    # fixed comes before grid and space so that their checks see it.
    fixed: dict[str, HyperValue] = Field(default_factory=dict, description="parameters held fixed")
    grid: dict[str, list[HyperValue]] = Field(
        default_factory=dict,
        description="grid: parameter -> values, e.g. {'n_factors': [50, 100]}; at most "
        "RECFLOW_MAX_SEARCH_TRIALS (200) combinations",
    )
    space: dict[str, Distribution] = Field(
        default_factory=dict, description="random: parameter -> distribution"
    )
    n_trials: int = Field(default=20, ge=1, description="at most RECFLOW_MAX_SEARCH_TRIALS (200)")
    k: Folds = 5
    seed: int = 0
    n_jobs: NJobs = 1
    feedback: FeedbackParams | None = Field(
        default=None, description="implicit algorithms: where interactions come from, weights"
    )
    ranking: RankingParams = Field(
        default_factory=RankingParams,
        description="implicit algorithms: trials are scored by NDCG@k on the last n_test "
        "interactions per user",
    )

    @field_validator("fixed")
    @classmethod
    def _fixed(cls, v: dict[str, HyperValue], info: ValidationInfo) -> dict[str, HyperValue]:
        if "algorithm" in info.data:
            check_hyperparameters(info.data["algorithm"], v)
        return v

    @field_validator("grid")
    @classmethod
    def _grid(
        cls, v: dict[str, list[HyperValue]], info: ValidationInfo
    ) -> dict[str, list[HyperValue]]:
        empty = [name for name, values in v.items() if not values]
        if empty:
            raise ValueError(f"grid values of {', '.join(empty)} must be a non-empty list")
        total = math.prod(len(values) for values in v.values())
        settings = context_settings(info)
        limit = MAX_TRIALS if settings is None else min(settings.max_search_trials, MAX_TRIALS)
        if total > limit:
            raise custom_error(
                "ceiling_exceeded",
                f"the grid has {total} combinations; at most {limit} are allowed "
                "(RECFLOW_MAX_SEARCH_TRIALS)",
            )
        if "algorithm" in info.data and "fixed" in info.data:
            # Every combination, as the search would build it (a baseline's options depend on
            # its method, so values can clash across parameters).
            for combo in itertools.product(*v.values()):
                check_hyperparameters(
                    info.data["algorithm"],
                    {**info.data["fixed"], **dict(zip(v, combo, strict=True))},
                )
        return v

    @field_validator("space")
    @classmethod
    def _space(cls, v: dict[str, Distribution], info: ValidationInfo) -> dict[str, Distribution]:
        if "algorithm" in info.data and "fixed" in info.data and v:
            for end in (0, 1):
                drawn = {name: d.ends()[end] for name, d in v.items()}
                check_hyperparameters(info.data["algorithm"], {**info.data["fixed"], **drawn})
        return v

    @field_validator("n_trials")
    @classmethod
    def _trials(cls, v: int, info: ValidationInfo) -> int:
        at_most(v, info, "max_search_trials")
        if v > MAX_TRIALS:
            raise ValueError(f"n_trials must be at most {MAX_TRIALS}")
        return v

    @model_validator(mode="after")
    def _needs_space(self) -> SearchParams:
        if self.strategy == "grid" and not self.grid:
            raise ValueError("strategy=grid needs grid, e.g. {'n_factors': [50, 100]}")
        if self.algorithm == "als" and ("implicit" in self.grid or "implicit" in self.space):
            raise ValueError("als: hold implicit fixed (fixed.implicit), not searched")
        if self.strategy == "random" and not self.space:
            raise ValueError(
                "strategy=random needs space, e.g. {'lr_all': {'dist': 'loguniform', "
                "'low': 0.001, 'high': 0.02}}"
            )
        return self


def run(ctx: JobContext, p: SearchParams) -> dict[str, Any]:
    if p.algorithm == "als":
        return _run_als(ctx, p)
    if is_implicit(p.algorithm):
        return _run_implicit(ctx, p)
    with ctx.stage("load") as st:
        ratings = load(p.data, ctx.settings)
        st.rows_out = ratings.n_ratings
    progress = scaled(ctx.progress, 0.02, 0.96)
    with ctx.stage("search", rows_in=ratings.n_ratings) as st:
        if p.strategy == "grid":
            result = grid_search(
                ratings,
                p.grid,
                algorithm=p.algorithm,
                fixed=p.fixed,
                k=p.k,
                seed=p.seed,
                n_jobs=p.n_jobs,
                progress=progress,
            )
        else:
            space = {k: d.to_core() for k, d in p.space.items()}
            result = random_search(
                ratings,
                space,
                n_trials=p.n_trials,
                algorithm=p.algorithm,
                fixed=p.fixed,
                k=p.k,
                seed=p.seed,
                n_jobs=p.n_jobs,
                progress=progress,
            )
        st.rows_out = len(result.trials)
    trials = [
        _rating_trial(
            t.index, t.params, t.rmse, t.rmse_std, t.mae, t.mpe, t.fit_seconds, t.wall_seconds
        )
        for t in result.trials
    ]
    _store(ctx, trials, ("rmse", "mae"))
    return (
        {"algorithm": result.algorithm, "strategy": result.strategy}
        | _rating_result(trials, result.best.index, result.k)
        | {"total_seconds": result.total_seconds}
    )


def _run_implicit(ctx: JobContext, p: SearchParams) -> dict[str, Any]:
    with ctx.stage("load") as st:
        interactions = load_interactions(p.data, p.feedback, ctx.settings)
        st.rows_out = len(interactions.frame)
        st.extra["source"] = interactions.source
    k = p.ranking.k
    with ctx.stage("search", rows_in=len(interactions.frame)) as st:
        result = ranking_search(
            interactions.frame,
            _combos(p),
            algorithm=p.algorithm,
            fixed=p.fixed,
            strategy=p.strategy,
            n_test=p.ranking.n_test,
            k=k,
            progress=scaled(ctx.progress, 0.02, 0.96),
        )
        st.rows_out = len(result.trials)
    trials = [_ranking_trial(t.index, t.params, k, vars(t), t.fit_seconds) for t in result.trials]
    _store(ctx, trials, (f"ndcg@{k}", f"precision@{k}"))
    return (
        {"algorithm": result.algorithm, "strategy": result.strategy}
        | _ranking_result(trials, result.best.index, k, result.n_test)
        | {"total_seconds": result.total_seconds}
    )


def _run_als(ctx: JobContext, p: SearchParams) -> dict[str, Any]:
    """Spark ALS: every trial over one prepared Spark frame, reported as the others are."""
    from backend.training.spark_als import search_als

    combos = _combos(p)
    fb = p.feedback or FeedbackParams()
    k = p.ranking.k
    started = time.perf_counter()
    with ctx.stage("search") as st:
        trials = search_als(
            p.data, combos, ctx.settings, fixed=p.fixed, weights=fb.weights(), k=p.k,
            seed=p.seed, n_test=p.ranking.n_test, top_k=k,
            progress=scaled(ctx.progress, 0.02, 0.96),
        )  # fmt: skip
        st.rows_out = len(trials)
    best = best_trial(trials)
    params = [{**p.fixed, **combo} for combo in combos]
    out: dict[str, Any] = {"algorithm": "als", "strategy": p.strategy}
    if best.params.implicit:
        listed = [
            _ranking_trial(t.index, params[t.index], k, t.metrics, t.fit_seconds) for t in trials
        ]
        _store(ctx, listed, (f"ndcg@{k}", f"precision@{k}"))
        out |= _ranking_result(listed, best.index, k, p.ranking.n_test)
    else:
        listed = [
            _rating_trial(
                t.index, params[t.index], t.metrics["rmse"], t.metrics["rmse_std"],
                t.metrics["mae"], None, t.fit_seconds, t.fit_seconds,
            )
            for t in trials
        ]  # fmt: skip
        _store(ctx, listed, ("rmse", "mae"))
        out |= _rating_result(listed, best.index, p.k)
    return out | {"total_seconds": time.perf_counter() - started}


def _combos(p: SearchParams) -> list[dict[str, Any]]:
    """The configurations to try: every one of the grid, or ``n_trials`` seeded random draws."""
    if p.strategy == "grid":
        return grid_combos(p.grid)
    return random_combos({k: d.to_core() for k, d in p.space.items()}, p.n_trials, p.seed)


def _rating_trial(
    index: int,
    params: dict[str, Any],
    rmse: float,
    rmse_std: float,
    mae: float,
    mpe: float | None,
    fit_seconds: float,
    wall_seconds: float,
) -> dict[str, Any]:
    """A trial scored by k-fold RMSE, as the job reports it."""
    return {
        "index": index,
        "params": params,
        "rmse": rmse,
        "rmse_std": rmse_std,
        "mae": mae,
        "mpe": mpe,
        "fit_seconds": fit_seconds,
        "wall_seconds": wall_seconds,
    }


def _ranking_trial(
    index: int, params: dict[str, Any], k: int, metrics: Mapping[str, Any], fit_seconds: float
) -> dict[str, Any]:
    """A trial scored by hold-out ranking metrics (``metrics`` by their plain names), as the
    job reports it."""
    return (
        {"index": index, "params": params}
        | {f"{n}@{k}": metrics[n] for n in ("ndcg", "precision", "recall", "map")}
        | {"hit_rate": metrics["hit_rate"], "coverage": metrics["coverage"]}
        | {"fit_seconds": fit_seconds}
    )


def _store(ctx: JobContext, trials: list[dict[str, Any]], names: tuple[str, str]) -> None:
    """Store the ``names`` metrics of every trial as the job's metrics (``trial-<index>``)."""
    rows: list[tuple[str, int | None, str, float | None]] = [
        (f"trial-{t['index']}", None, name, t[name]) for t in trials for name in names
    ]
    with ctx.stage("store", rows_in=len(rows)), session_scope(ctx.settings.sqlalchemy_url) as s:
        repo.add_metrics(s, ctx.job_id, None, rows)


def _rating_result(trials: list[dict[str, Any]], best: int, k: int) -> dict[str, Any]:
    """The fold count, the best trial (``best`` is its index) and the trials by RMSE."""
    top = next(t for t in trials if t["index"] == best)
    return {
        "k": k,
        "best": {"params": top["params"], "rmse": top["rmse"], "mae": top["mae"], "index": best},
        "trials": sorted(trials, key=lambda t: (t["rmse"], t["index"])),
    }


def _ranking_result(trials: list[dict[str, Any]], best: int, k: int, n_test: int) -> dict[str, Any]:
    """The metric, the hold-out size, the best trial (``best`` is its index) and the trials by
    NDCG, highest first."""
    top = next(t for t in trials if t["index"] == best)
    metric = f"ndcg@{k}"
    return {
        "metric": metric,
        "n_test": n_test,
        "best": {"params": top["params"], metric: top[metric], "index": best},
        "trials": sorted(trials, key=lambda t: (-t[metric], t["index"])),
    }


KIND = JobKind(
    "search",
    SearchParams,
    run,
    "Grid or random hyperparameter search by CV RMSE (implicit models: hold-out NDCG).",
)
