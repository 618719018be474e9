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
        {
            "index": t.index,
            "params": t.params,
            "rmse": t.rmse,
            "rmse_std": t.rmse_std,
            "mae": t.mae,
            "mpe": t.mpe,
            "fit_seconds": t.fit_seconds,
            "wall_seconds": t.wall_seconds,
        }
        for t in result.trials
    ]
    rows: list[tuple[str, int | None, str, float | None]] = []
    for t in result.trials:
        rows += [
            (f"trial-{t.index}", None, "rmse", t.rmse),
            (f"trial-{t.index}", None, "mae", t.mae),
        ]
    with ctx.stage("store", rows_in=len(rows)), session_scope(ctx.settings.sqlalchemy_url) as s:
        repo.add_metrics(s, ctx.job_id, None, rows)
    best = result.best
    return {
        "algorithm": result.algorithm,
        "strategy": result.strategy,
        "k": result.k,
        "best": {"params": best.params, "rmse": best.rmse, "mae": best.mae, "index": best.index},
        "trials": sorted(trials, key=lambda t: t["rmse"]),
        "total_seconds": result.total_seconds,
    }


def _run_implicit(ctx: JobContext, p: SearchParams) -> dict[str, Any]:
    with ctx.stage("load") as st:
        interactions = load_interactions(p.data, p.feedback, ctx.settings)
        st.rows_out = len(interactions.frame)
        st.extra["source"] = interactions.source
    if p.strategy == "grid":
        combos = grid_combos(p.grid)
    else:
        combos = random_combos({k: d.to_core() for k, d in p.space.items()}, p.n_trials, p.seed)
    k = p.ranking.k
    with ctx.stage("search", rows_in=len(interactions.frame)) as st:
        result = ranking_search(
            interactions.frame,
            combos,
            algorithm=p.algorithm,
            fixed=p.fixed,
            strategy=p.strategy,
            n_test=p.ranking.n_test,
            k=k,
            progress=scaled(ctx.progress, 0.02, 0.96),
        )
        st.rows_out = len(result.trials)
    trials = [
        {
            "index": t.index,
            "params": t.params,
            f"ndcg@{k}": t.ndcg,
            f"precision@{k}": t.precision,
            f"recall@{k}": t.recall,
            f"map@{k}": t.map,
            "hit_rate": t.hit_rate,
            "coverage": t.coverage,
            "fit_seconds": t.fit_seconds,
        }
        for t in result.trials
    ]
    rows: list[tuple[str, int | None, str, float | None]] = []
    for t in result.trials:
        rows += [
            (f"trial-{t.index}", None, f"ndcg@{k}", t.ndcg),
            (f"trial-{t.index}", None, f"precision@{k}", t.precision),
        ]
    with ctx.stage("store", rows_in=len(rows)), session_scope(ctx.settings.sqlalchemy_url) as s:
        repo.add_metrics(s, ctx.job_id, None, rows)
    best = result.best
    return {
        "algorithm": result.algorithm,
        "strategy": result.strategy,
        "metric": f"ndcg@{k}",
        "n_test": result.n_test,
        "best": {"params": best.params, f"ndcg@{k}": best.ndcg, "index": best.index},
        "trials": sorted(trials, key=lambda t: (-t[f"ndcg@{k}"], t["index"])),
        "total_seconds": result.total_seconds,
    }


def _run_als(ctx: JobContext, p: SearchParams) -> dict[str, Any]:
    """Spark ALS: every trial over one prepared Spark frame, reported as the others are."""
    from backend.training.spark_als import search_als

    if p.strategy == "grid":
        combos = grid_combos(p.grid)
    else:
        combos = random_combos({k: d.to_core() for k, d in p.space.items()}, p.n_trials, p.seed)
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
    implicit = best.params.implicit
    params = [{**p.fixed, **combo} for combo in combos]
    rows: list[tuple[str, int | None, str, float | None]] = []
    listed: list[dict[str, Any]] = []
    for t in trials:
        m = t.metrics
        if implicit:
            names = (("ndcg", f"ndcg@{k}"), ("precision", f"precision@{k}"))
            listed.append(
                {"index": t.index, "params": params[t.index], "fit_seconds": t.fit_seconds}
                | {f"{n}@{k}": m[n] for n in ("ndcg", "precision", "recall", "map")}
                | {"hit_rate": m["hit_rate"], "coverage": m["coverage"]}
            )
        else:
            names = (("rmse", "rmse"), ("mae", "mae"))
            listed.append(
                {"index": t.index, "params": params[t.index], "rmse": m["rmse"],
                 "rmse_std": m["rmse_std"], "mae": m["mae"], "mpe": None,
                 "fit_seconds": t.fit_seconds, "wall_seconds": t.fit_seconds}
            )  # fmt: skip
        rows += [(f"trial-{t.index}", None, stored, m[name]) for name, stored in names]
    with ctx.stage("store", rows_in=len(rows)), session_scope(ctx.settings.sqlalchemy_url) as s:
        repo.add_metrics(s, ctx.job_id, None, rows)
    out: dict[str, Any] = {"algorithm": "als", "strategy": p.strategy}
    if implicit:
        out |= {
            "metric": f"ndcg@{k}",
            "n_test": p.ranking.n_test,
            "best": {"params": params[best.index], f"ndcg@{k}": best.metrics["ndcg"],
                     "index": best.index},
            "trials": sorted(listed, key=lambda t: (-t[f"ndcg@{k}"], t["index"])),
        }  # fmt: skip
    else:
        out |= {
            "k": p.k,
            "best": {"params": params[best.index], "rmse": best.metrics["rmse"],
                     "mae": best.metrics["mae"], "index": best.index},
            "trials": sorted(listed, key=lambda t: (t["rmse"], t["index"])),
        }  # fmt: skip
    return out | {"total_seconds": time.perf_counter() - started}


KIND = JobKind(
    "search",
    SearchParams,
    run,
    "Grid or random hyperparameter search by CV RMSE (implicit models: hold-out NDCG).",
)
