"""``train``: fit on all the ratings, store a versioned artifact, register it, maybe promote.

Stages: load, validate (when ``validate_k`` > 0; its RMSE feeds the promotion gate),
validate_ranking (when ``validate_ranking`` is set: ranking metrics on a temporal hold-out, whose
NDCG@k feeds the gate when ``gate_metric`` is ``ndcg``), fit, save (atomic: a half-written
artifact is never visible), register (a ``models`` row, metrics rows), and activation according
to ``activate``: ``never``, ``always``, or ``if_better`` (the gate: only when the new validation
RMSE is no worse than the active model's, or its NDCG@k no lower).

Implicit algorithms (``implicit_als``, ``item_knn``) train on interactions built from the lake's
events or from thresholded ratings (``feedback``); they have no RMSE, so they validate by ranking
and their gate compares NDCG@k.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.jobs import repository as jobs_repo
from backend.jobs.context import AttemptSuperseded, JobContext, TransientJobError
from backend.jobs.kind import JobKind
from backend.jobs.params import JobParams, NJobs, at_most
from backend.jsonable import to_jsonable
from backend.paths import shown
from backend.recsys.algorithms import AlgoSpec, fit
from backend.recsys.artifacts import save_artifact
from backend.recsys.crossval import cross_validate
from backend.recsys.datasets import load_items
from backend.recsys.implicit_models import fit_implicit
from backend.recsys.model import FactorModel
from backend.recsys.ranking import RankingReport, evaluate_implicit_ranking, evaluate_ranking
from backend.registry import service as registry
from backend.registry.schemas import VersionLabel
from backend.training import claims
from backend.training.crossval import RankingParams
from backend.training.feedback import FeedbackParams, is_implicit, load_interactions
from backend.training.sources import AlgoParams, ItemsParams, RatingsParams, load, scaled
from backend.training.spark_als import train_stages


class TrainParams(JobParams):
    data: RatingsParams = Field(default_factory=RatingsParams)
    model: AlgoParams = Field(default_factory=AlgoParams)
    items: ItemsParams | None = Field(default=None, description="titles and genres to serve")
    version: VersionLabel | None = Field(
        default=None, description="artifact version (default: generated)"
    )
    validate_k: int = Field(
        default=0,
        ge=0,
        description="k-fold CV before fitting; 0=off, else 2 to RECFLOW_MAX_CV_FOLDS",
    )
    n_jobs: NJobs = 1
    seed: int = 0
    activate: registry.Activation = "if_better"
    feedback: FeedbackParams | None = Field(
        default=None, description="implicit algorithms: where interactions come from, weights"
    )
    validate_ranking: RankingParams | None = Field(
        default=None,
        description="ranking metrics on a temporal hold-out before fitting (off by default)",
    )
    gate_metric: Literal["rmse", "ndcg"] | None = Field(
        default=None,
        description="what the if_better gate compares: rmse (from validate_k) or ndcg (from "
        "validate_ranking); default ndcg for implicit algorithms, else rmse",
    )

    @field_validator("validate_k")
    @classmethod
    def _folds(cls, v: int, info: ValidationInfo) -> int:
        if v == 1:
            raise ValueError("validate_k must be 0 (no validation) or at least 2 folds")
        at_most(v, info, "max_cv_folds")
        return v

    @model_validator(mode="after")
    def _implicit(self) -> TrainParams:
        if is_implicit(self.model.algorithm) and self.validate_k:
            raise ValueError(
                f"{self.model.algorithm} predicts no ratings, so k-fold RMSE does not apply; "
                "validate it with validate_ranking"
            )
        if self.gate_metric == "rmse" and is_implicit(self.model.algorithm):
            raise ValueError(f"{self.model.algorithm} has no RMSE to gate on; use gate_metric=ndcg")
        return self

    def gate(self) -> registry.GateMetric:
        """The metric the promotion gate compares."""
        if self.gate_metric is not None:
            return self.gate_metric
        implicit_als = self.model.algorithm == "als" and bool(
            AlgoSpec("als", self.model.params).resolved_params()["implicit"]
        )
        return "ndcg" if is_implicit(self.model.algorithm) or implicit_als else "rmse"


def run(ctx: JobContext, p: TrainParams) -> dict[str, Any]:
    spec = AlgoSpec(p.model.algorithm, p.model.params)
    if spec.name == "als":  # Spark reads, validates and fits over one persisted frame
        rp = p.validate_ranking
        trained = train_stages(
            ctx, p.data, spec, weights=(p.feedback or FeedbackParams()).weights(),
            validate_k=p.validate_k, seed=p.seed,
            ranking=None if rp is None else (rp.n_test, rp.k, rp.threshold),
        )  # fmt: skip
        model, n_rows, data_fingerprint = trained.model, trained.rows, trained.fingerprint
        metrics, metric_rows = trained.metrics, trained.metric_rows
    else:
        model, n_rows, data_fingerprint, metrics, metric_rows = _fit_here(ctx, p, spec)
    ctx.check_cancelled()
    return _store(ctx, p, spec, model, n_rows, data_fingerprint, metrics, metric_rows)


def _fit_here(
    ctx: JobContext, p: TrainParams, spec: AlgoSpec
) -> tuple[FactorModel, int, str, dict[str, Any], list[tuple[str, int | None, str, float | None]]]:
    implicit = is_implicit(spec.name)
    with ctx.stage("load") as st:
        if implicit:
            interactions = load_interactions(p.data, p.feedback, ctx.settings)
            n_rows, data_fingerprint = len(interactions.frame), interactions.fingerprint
            st.rows_out = n_rows
            st.extra.update(
                users=interactions.n_users,
                items=interactions.n_items,
                source=interactions.source,
                rows_read=interactions.rows_read,
            )
        else:
            ratings = load(p.data, ctx.settings)
            n_rows, data_fingerprint = ratings.n_ratings, ratings.fingerprint
            st.rows_out = ratings.n_ratings
            st.extra.update(
                users=ratings.n_users,
                items=ratings.n_items,
                duplicates_dropped=ratings.duplicates_dropped,
            )
    metrics: dict[str, Any] = {}
    metric_rows: list[tuple[str, int | None, str, float | None]] = []
    if p.validate_ranking:
        rp = p.validate_ranking
        with ctx.stage("validate_ranking", rows_in=n_rows) as st:
            progress = scaled(ctx.progress, 0.05, 0.45)
            rk: RankingReport
            if implicit:
                rk = evaluate_implicit_ranking(
                    interactions.frame, [spec], n_test=rp.n_test, k=rp.k, progress=progress
                )
            else:
                rk = evaluate_ranking(
                    ratings, [spec], n_test=rp.n_test, k=rp.k, threshold=rp.threshold,
                    progress=progress,
                )  # fmt: skip
            r = rk.results[0]
            metrics.update(
                val_ndcg=r.ndcg, val_precision=r.precision, val_recall=r.recall, val_map=r.map,
                val_hit_rate=r.hit_rate, val_coverage=r.coverage, val_k=rk.k,
                val_n_test=rk.n_test,
            )  # fmt: skip
            metric_rows += [
                (f"ranking:{spec.name}", None, f"ndcg@{rk.k}", r.ndcg),
                (f"ranking:{spec.name}", None, f"precision@{rk.k}", r.precision),
                (f"ranking:{spec.name}", None, f"recall@{rk.k}", r.recall),
                (f"ranking:{spec.name}", None, f"map@{rk.k}", r.map),
                (f"ranking:{spec.name}", None, "hit_rate", r.hit_rate),
                (f"ranking:{spec.name}", None, "coverage", r.coverage),
            ]
            st.rows_out = rk.n_users_evaluated
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
    with ctx.stage("fit", rows_in=n_rows) as st:
        t0 = time.perf_counter()
        model: FactorModel
        if implicit:
            model = fit_implicit(interactions.frame, spec, progress=scaled(ctx.progress, 0.5, 0.4))
        else:
            model = fit(ratings, spec, progress=scaled(ctx.progress, 0.5, 0.4))
        metrics["fit_seconds"] = time.perf_counter() - t0
        st.rows_out = model.n_users + model.n_items
    return model, n_rows, data_fingerprint, metrics, metric_rows


def _store(
    ctx: JobContext,
    p: TrainParams,
    spec: AlgoSpec,
    model: FactorModel,
    n_rows: int,
    data_fingerprint: str,
    metrics: dict[str, Any],
    metric_rows: list[tuple[str, int | None, str, float | None]],
) -> dict[str, Any]:
    metrics.update(n_users=model.n_users, n_items=model.n_items, n_ratings=n_rows)
    models_dir = ctx.settings.models_dir
    # The version is fixed per job, so that a retry (after its worker died) finds its own work:
    # registered already (reuse it), saved but not registered (register it), or half-written.
    version, owner = claims.version_of(ctx, p.version, spec.name)
    swept = claims.sweep_orphans(ctx)
    earlier = claims.registered_by_this_job(ctx, version)
    if earlier is not None:
        return earlier | {"data": p.data.describe(), "reused": True}
    with ctx.stage("save") as st:
        if swept:
            st.extra["orphans_removed"] = swept
        items = None
        if p.items is not None:
            # Saved inside the artifact, so that its manifest covers the metadata serving shows.
            frame = load_items(p.items.folder(ctx.settings), p.items.format)
            items = to_jsonable(frame.to_dict("records"))
            st.extra["items_metadata"] = len(frame)
        path = models_dir / version
        saved = claims.own_artifact(models_dir, version, owner)
        if saved is not None:
            metrics = saved  # registered as the earlier attempt saved it
            st.extra["reused"] = True
        else:
            path = save_artifact(
                model,
                models_dir,
                version,
                metrics=metrics,
                fingerprint=data_fingerprint,
                items=items,
            )
        st.extra["path"] = shown(path, ctx.settings)
    ctx.pause_point("train.after_save")
    try:
        # The artifact is checked against its manifest before the transaction: hashing every
        # file must not hold the database's write lock (SQLite) or the job row (PostgreSQL).
        registry.verify_artifact(version, str(path))
        with ctx.stage("register"), session_scope(ctx.settings.sqlalchemy_url) as s:
            # Hold the job for this attempt in the transaction that adds the model row: if the
            # reaper re-queued the job meanwhile (a worker slow, not dead), this attempt stops
            # here and the new one registers; a reaper that comes later waits for this commit,
            # then finds a fresh heartbeat.
            if not jobs_repo.beat(s, ctx.job_id, ctx.attempt, utcnow()):
                raise AttemptSuperseded(
                    f"job {ctx.job_id}: attempt {ctx.attempt} no longer owns the job; "
                    "its artifact is left to the attempt that does"
                )
            registered = registry.register(
                s,
                version=version,
                algorithm=spec.name,
                params=spec.resolved_params(),
                path=str(path.resolve()),
                fingerprint=data_fingerprint,
                metrics=metrics,
                n_users=model.n_users,
                n_items=model.n_items,
                n_ratings=n_rows,
                job_id=ctx.job_id,
                metric_rows=metric_rows,
                activation=p.activate,
                verified=True,
                gate_metric=p.gate(),
            )
    except (TransientJobError, AttemptSuperseded):
        raise  # a retry, or the attempt that superseded this one, registers the artifact
    except Exception:
        # Failing for good: leave no unregistered artifact. Never remove a registered one (an
        # attempt that raced this one may have registered it).
        if not claims.registered(ctx, version):
            claims.discard(models_dir, version, owner)
        raise
    return {
        "model_id": registered.model_id,
        "version": version,
        "algorithm": spec.name,
        "params": spec.resolved_params(),
        "metrics": metrics,
        "activated": registered.activated,
        "activation_reason": registered.reason,
        "data": p.data.describe(),
        "path": shown(path, ctx.settings),  # in the data dir
    }


KIND = JobKind("train", TrainParams, run, "Fit a model, store a versioned artifact, register it.")
