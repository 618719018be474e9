"""``simulate``: scenarios on trained models, without retraining.

Modes: ``precompute`` writes every user's top-N of a model version to the lake as Parquet (and,
with ``to_redis``, into Redis, where serving reads them when ``RECFLOW_SERVING_PRECOMPUTED`` is
on), by blocked matrix multiplication with bounded memory; ``compare`` lists one user's top-N
under several versions side by side with their overlap; ``what_if`` folds hypothetical ratings
into a user and returns the new top-N.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, model_validator

from backend.db.session import session_scope
from backend.jobs.context import JobContext
from backend.jobs.kind import JobKind
from backend.jobs.params import JobParams, context_settings, custom_error
from backend.paths import shown
from backend.recsys.artifacts import load_artifact
from backend.recsys.foldin import fold_in, fold_in_reg, recommend_folded
from backend.recsys.indexes import id_index
from backend.recsys.model import FactorModel
from backend.recsys.precompute import precompute_topn
from backend.recsys.scenarios import compare_scenarios
from backend.registry import repository as repo
from backend.registry.schemas import VersionLabel


class SimulateParams(JobParams):
    mode: Literal["precompute", "compare", "what_if"] = "precompute"
    version: VersionLabel | None = Field(
        default=None, description="model version (default: the active)"
    )
    versions: list[VersionLabel] = Field(
        default_factory=list, max_length=8, description="for compare"
    )
    user: str | None = Field(default=None, description="for compare and what_if")
    ratings: dict[str, float] = Field(default_factory=dict, description="for what_if")
    reg: float | None = Field(
        default=None, ge=0, description="fold-in λ; default 5, or an implicit model's own λ"
    )
    n: int = Field(default=10, ge=1, le=1000)
    to_redis: bool = Field(default=False, description="precompute: also SET each list in Redis")
    memory_budget_mb: int = Field(default=256, ge=8, le=65_536)

    @model_validator(mode="after")
    def _mode_needs(self, info: ValidationInfo) -> SimulateParams:
        if self.mode == "compare" and (not self.user or len(self.versions) < 2):
            raise ValueError("mode=compare needs user and at least two versions")
        if self.mode == "what_if" and (not self.user or not self.ratings):
            raise ValueError("mode=what_if needs user and ratings {item: rating}")
        settings = context_settings(info)
        if self.mode == "precompute" and self.to_redis and settings and not settings.redis_url:
            raise custom_error("service_not_configured", "to_redis needs RECFLOW_REDIS_URL")
        return self


def _model(ctx: JobContext, version: str | None) -> tuple[str, FactorModel]:
    _, name, model = _registered(ctx, version)
    return name, model


def _registered(ctx: JobContext, version: str | None) -> tuple[int, str, FactorModel]:
    """The registry id, version and model of ``version`` (default: the active one)."""
    with session_scope(ctx.settings.sqlalchemy_url) as s:
        row = repo.by_version(s, version) if version else repo.active(s)
        if row is None:
            raise ValueError(
                f"model version {version!r} not found"
                if version
                else "no active model; train one first (kind=train) or pass version"
            )
        model_id, name, path = row.id, row.version, Path(row.path)
    return model_id, name, load_artifact(path).model


def run(ctx: JobContext, p: SimulateParams) -> dict[str, Any]:
    if p.mode == "compare":
        with ctx.stage("load") as st:
            models = dict(_model(ctx, v) for v in p.versions)
            st.rows_out = len(models)
        with ctx.stage("compare"):
            cmp = compare_scenarios(models, p.user or "", p.n)
        return {
            "mode": "compare",
            "user": cmp.user,
            "n": cmp.n,
            "lists": [
                {
                    "version": lst.name,
                    "items": list(lst.items),
                    "scores": list(lst.scores),
                    "source": lst.source,
                }
                for lst in cmp.lists
            ],
            "overlaps": [
                {
                    "a": o.a,
                    "b": o.b,
                    "common": o.common,
                    "jaccard": o.jaccard,
                    "overlap_at_n": o.overlap_at_n,
                }
                for o in cmp.overlaps
            ],
        }
    with ctx.stage("load") as st:
        model_id, version, model = _registered(ctx, p.version)
        st.rows_out = model.n_users
    if p.mode == "what_if":
        with ctx.stage("fold_in", rows_in=len(p.ratings)):
            existing = id_index(model).users.get(p.user or "")
            folded = fold_in(
                model, p.ratings, reg=fold_in_reg(model, p.reg), existing_user=existing
            )
            top = recommend_folded(model, folded, p.n)
        return {
            "mode": "what_if",
            "version": version,
            "user": p.user,
            "existing_user": existing is not None,
            "items": [{"item": i, "score": s} for i, s in top.raw(model)],
        }
    redis_client = None
    if p.to_redis:
        if not ctx.settings.redis_url:
            raise ValueError("to_redis needs RECFLOW_REDIS_URL")
        import redis

        redis_client = redis.Redis.from_url(ctx.settings.redis_url)
    out = ctx.settings.lake_dir / "topn" / version
    with ctx.stage("precompute", rows_in=model.n_users) as st:
        res = precompute_topn(
            model,
            p.n,
            out_dir=out,
            redis=redis_client,
            version=version,
            key_prefix=ctx.settings.topn_key_prefix,
            # Serving never uses a list older than this: Redis may as well drop it.
            ttl_seconds=math.ceil(ctx.settings.serving_precomputed_max_age_s),
            model_id=model_id,
            memory_budget=p.memory_budget_mb * 2**20,
            progress=lambda done, total: ctx.progress(done / total, f"{done}/{total} users"),
        )
        st.rows_out = res.n_rows
        st.extra.update(
            blocks=res.n_blocks,
            block_size=res.block_size,
            compute_seconds=res.compute_seconds,
            write_seconds=res.write_seconds,
        )
    return {
        "mode": "precompute",
        "version": version,
        "users": res.n_users,
        "rows": res.n_rows,
        "parquet": shown(res.parquet_path, ctx.settings)
        if res.parquet_path
        else None,  # relative to the data dir
        "redis_keys": res.redis_keys,
        "blocks": res.n_blocks,
        "block_size": res.block_size,
        "seconds": res.total_seconds,
    }


KIND = JobKind("simulate", SimulateParams, run, "Precompute top-N, compare versions, what-if.")
