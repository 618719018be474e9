"""``search``: hyperparameter search (grid or seeded random) scored by k-fold CV RMSE."""

from __future__ import annotations

import itertools
import math
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
from backend.recsys.search import (
    MAX_TRIALS,
    IntRange,
    LogUniform,
    Uniform,
    grid_search,
    random_search,
)
from backend.registry import repository as repo
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
    algorithm: Literal["svd", "svdpp", "baseline"] = "svd"
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


KIND = JobKind("search", SearchParams, run, "Grid or random hyperparameter search by CV RMSE.")
