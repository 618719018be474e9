"""``train``: fit on all the ratings, store a versioned artifact, register it, maybe promote.

Stages: load, validate (when ``validate_k`` > 0; its RMSE feeds the promotion gate), fit, save
(atomic: a half-written artifact is never visible), register (a ``models`` row, metrics rows),
and activation according to ``activate``: ``never``, ``always``, or ``if_better`` (the gate:
only when the new validation RMSE is no worse than the active model's).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.db.session import session_scope
from backend.jobs.context import JobContext
from backend.jobs.kinds import JobKind, register
from backend.jobs.kinds.sources import AlgoParams, ItemsParams, RatingsParams, load, scaled
from backend.recsys.algorithms import AlgoSpec, fit
from backend.recsys.artifacts import save_artifact
from backend.recsys.datasets import load_items
from backend.recsys.validate import cross_validate
from backend.registry import repository as repo
from backend.registry import service as registry
from backend.serving.state import write_items

VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: RatingsParams = Field(default_factory=RatingsParams)
    model: AlgoParams = Field(default_factory=AlgoParams)
    items: ItemsParams | None = Field(default=None, description="titles and genres to serve")
    version: str | None = Field(default=None, description="artifact version (default: generated)")
    validate_k: int = Field(default=0, ge=0, le=10, description="k-fold CV before fitting; 0=off")
    n_jobs: int = Field(default=1, ge=1, le=64, description="parallel folds")
    seed: int = 0
    activate: Literal["never", "always", "if_better"] = "if_better"

    @field_validator("version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and not VERSION.match(v):
            raise ValueError("version must be 1-64 characters of [A-Za-z0-9._-]")
        return v


def run(ctx: JobContext, p: TrainParams) -> dict[str, Any]:
    spec = AlgoSpec(p.model.algorithm, p.model.params)
    with ctx.stage("load") as st:
        ratings = load(p.data, ctx.settings)
        st.rows_out = ratings.n_ratings
        st.extra.update(
            users=ratings.n_users,
            items=ratings.n_items,
            duplicates_dropped=ratings.duplicates_dropped,
        )
    metrics: dict[str, Any] = {}
    metric_rows: list[tuple[str, int | None, str, float | None]] = []
    if p.validate_k:
        with ctx.stage("validate", rows_in=ratings.n_ratings) as st:
            cv = cross_validate(
                ratings,
                spec,
                k=p.validate_k,
                seed=p.seed,
                n_jobs=p.n_jobs,
                progress=scaled(ctx.progress, 0.05, 0.45),
            )
            metrics.update(
                cv_rmse=cv.rmse.mean, cv_mae=cv.mae.mean, cv_mpe=cv.mpe.mean, cv_k=p.validate_k
            )
            for f in cv.folds:
                metric_rows += [
                    (spec.name, f.fold, "rmse", f.rmse),
                    (spec.name, f.fold, "mae", f.mae),
                    (spec.name, f.fold, "mpe", f.mpe),
                ]
            metric_rows += [
                (spec.name, None, "rmse", cv.rmse.mean),
                (spec.name, None, "mae", cv.mae.mean),
            ]
            st.rows_out = len(cv.folds)
    with ctx.stage("fit", rows_in=ratings.n_ratings) as st:
        t0 = time.perf_counter()
        model = fit(ratings, spec, progress=scaled(ctx.progress, 0.5, 0.4))
        metrics["fit_seconds"] = time.perf_counter() - t0
        st.rows_out = model.n_users + model.n_items
    ctx.check_cancelled()
    version = p.version or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-j{ctx.job_id}"
    with ctx.stage("save") as st:
        metrics.update(n_users=model.n_users, n_items=model.n_items, n_ratings=ratings.n_ratings)
        path = save_artifact(
            model,
            ctx.settings.models_dir,
            version,
            metrics=metrics,
            fingerprint=ratings.fingerprint,
        )
        if p.items is not None:
            items = load_items(Path(p.items.path), p.items.format)
            write_items(path, [{str(k): v for k, v in r.items()} for r in items.to_dict("records")])
            st.extra["items_metadata"] = len(items)
        st.extra["path"] = str(path)
    with ctx.stage("register"), session_scope(ctx.settings.sqlalchemy_url) as s:
        row = repo.add(
            s,
            version=version,
            algorithm=spec.name,
            params=spec.resolved_params(),
            path=str(path.resolve()),
            fingerprint=ratings.fingerprint,
            metrics=metrics,
            n_users=model.n_users,
            n_items=model.n_items,
            n_ratings=ratings.n_ratings,
            job_id=ctx.job_id,
        )
        repo.add_metrics(s, ctx.job_id, row.id, metric_rows)
        current = repo.active(s)
        if p.activate == "always":
            allowed, reason = True, "activate=always"
        elif p.activate == "never":
            allowed, reason = False, "activate=never"
        else:
            allowed, reason = registry.gate_allows(
                metrics, None if current is None else current.metrics
            )
        if allowed:
            repo.set_active(s, row)
        model_id = row.id
    return {
        "model_id": model_id,
        "version": version,
        "algorithm": spec.name,
        "params": spec.resolved_params(),
        "metrics": metrics,
        "activated": allowed,
        "activation_reason": reason,
        "data": p.data.describe(),
        "path": str(path),
    }


register(
    JobKind("train", TrainParams, run, "Fit a model, store a versioned artifact, register it.")
)
