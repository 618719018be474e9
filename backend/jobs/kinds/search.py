"""``search``: hyperparameter search (grid or seeded random) scored by k-fold CV RMSE."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.db.session import session_scope
from backend.jobs.context import JobContext
from backend.jobs.kinds import JobKind, register
from backend.jobs.kinds.sources import RatingsParams, load, scaled
from backend.recsys.search import IntRange, LogUniform, Uniform, grid_search, random_search
from backend.registry import repository as repo


class Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dist: Literal["uniform", "loguniform", "int"]
    low: float
    high: float

    def to_core(self) -> Uniform | LogUniform | IntRange:
        if self.dist == "uniform":
            return Uniform(self.low, self.high)
        if self.dist == "loguniform":
            return LogUniform(self.low, self.high)
        return IntRange(int(self.low), int(self.high))


class SearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: RatingsParams = Field(default_factory=RatingsParams)
    algorithm: Literal["svd", "svdpp", "baseline"] = "svd"
    strategy: Literal["grid", "random"] = "grid"
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="grid: parameter -> values, e.g. {'n_factors': [50, 100]}"
    )
    space: dict[str, Distribution] = Field(
        default_factory=dict, description="random: parameter -> distribution"
    )
    n_trials: int = Field(default=20, ge=1, le=10_000)
    fixed: dict[str, Any] = Field(default_factory=dict, description="parameters held fixed")
    k: int = Field(default=5, ge=2, le=20)
    seed: int = 0
    n_jobs: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="after")
    def _needs_space(self) -> SearchParams:
        if self.strategy == "grid" and not self.grid:
            raise ValueError("strategy=grid needs grid, e.g. {'n_factors': [50, 100]}")
        if self.strategy == "random" and not self.space:
            raise ValueError(
                "strategy=random needs space, e.g. {'lr_all': {'dist': 'loguniform', "
                "'low': 0.001, 'high': 0.02}}"
            )
        return self


def run(ctx: JobContext, p: SearchParams) -> dict[str, Any]:
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


register(JobKind("search", SearchParams, run, "Grid or random hyperparameter search by CV RMSE."))
