"""``validate``: k-fold CV (ours and scikit-surprise's on the same folds), baselines, ranking.

Every fold's RMSE, MAE, MPE and timings land in the ``metrics`` table, one row per
(job, subject, fold, metric); fold NULL holds the mean. Subjects: the algorithm's name, each
baseline's name, ``surprise:<name>`` for surprise's own cross_validate, and ``ranking:<name>``
for the temporal hold-out ranking metrics.

An implicit algorithm (``implicit_als``, ``item_knn``) predicts no ratings, so it skips k-fold
RMSE: it is validated by ranking alone, on each user's last ``ranking.n_test`` interactions
(from the lake's events or thresholded ratings, ``feedback``), next to the popularity and
item-kNN baselines.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from backend.db.session import session_scope
from backend.jobs.context import JobContext
from backend.jobs.kind import JobKind
from backend.jobs.params import Folds, JobParams, NJobs
from backend.recsys.algorithms import AlgoSpec
from backend.recsys.crossval import CVResult, validate
from backend.recsys.errors import DataError
from backend.recsys.ranking import (
    IMPLICIT_BASELINES,
    RankingReport,
    evaluate_implicit_ranking,
    evaluate_ranking,
)
from backend.registry import repository as repo
from backend.training.feedback import FeedbackParams, is_implicit, load_interactions
from backend.training.sources import AlgoParams, RatingsParams, load, scaled

MetricRow = tuple[str, int | None, str, float | None]


class RankingParams(JobParams):
    n_test: int = Field(default=5, ge=1, le=100, description="last N ratings per user held out")
    k: int = Field(default=10, ge=1, le=1000)
    threshold: float = Field(default=4.0, description="relevant when rating >= threshold")


class ValidateParams(JobParams):
    data: RatingsParams = Field(default_factory=RatingsParams)
    model: AlgoParams = Field(default_factory=AlgoParams)
    k: Folds = 5
    seed: int = 0
    n_jobs: NJobs = 1
    baselines: bool = True
    with_surprise: bool = Field(default=True, description="also run surprise's cross_validate")
    ranking: RankingParams | None = Field(default_factory=RankingParams)
    feedback: FeedbackParams | None = Field(
        default=None, description="implicit algorithms: where interactions come from, weights"
    )


def _summary(cv: CVResult) -> dict[str, Any]:
    return {
        "algorithm": cv.algorithm,
        "params": cv.params,
        "rmse": {"mean": cv.rmse.mean, "std": cv.rmse.std},
        "mae": {"mean": cv.mae.mean, "std": cv.mae.std},
        "mpe": {"mean": cv.mpe.mean, "std": cv.mpe.std},
        "fit_seconds": {"mean": cv.fit_seconds.mean, "std": cv.fit_seconds.std},
        "test_seconds": {"mean": cv.test_seconds.mean, "std": cv.test_seconds.std},
        "wall_seconds": cv.wall_seconds,
        "folds": [
            {
                "fold": f.fold,
                "rmse": f.rmse,
                "mae": f.mae,
                "mpe": f.mpe,
                "mpe_zero_ratings_excluded": f.mpe_zero_ratings_excluded,
                "n_train": f.n_train,
                "n_test": f.n_test,
                "fit_seconds": f.fit_seconds,
                "test_seconds": f.test_seconds,
            }
            for f in cv.folds
        ],
    }


def _rows(cv: CVResult) -> list[MetricRow]:
    rows: list[MetricRow] = []
    for f in cv.folds:
        for name, value in (
            ("rmse", f.rmse),
            ("mae", f.mae),
            ("mpe", f.mpe),
            ("fit_seconds", f.fit_seconds),
            ("test_seconds", f.test_seconds),
        ):
            rows.append((cv.algorithm, f.fold, name, value))
    for name, summ in (("rmse", cv.rmse), ("mae", cv.mae), ("mpe", cv.mpe)):
        rows += [
            (cv.algorithm, None, name, summ.mean),
            (cv.algorithm, None, f"{name}_std", summ.std),
        ]
    return rows


def run(ctx: JobContext, p: ValidateParams) -> dict[str, Any]:
    spec = AlgoSpec(p.model.algorithm, p.model.params)
    if is_implicit(spec.name):
        return _run_implicit(ctx, p, spec)
    if spec.name == "als":
        return _run_als(ctx, p, spec)
    with ctx.stage("load") as st:
        ratings = load(p.data, ctx.settings)
        st.rows_out = ratings.n_ratings
    ranking_share = 0.25 if p.ranking else 0.0
    with ctx.stage("cross_validate", rows_in=ratings.n_ratings) as st:
        kwargs: dict[str, Any] = {} if p.baselines else {"baselines": ()}
        report = validate(
            ratings,
            spec,
            k=p.k,
            seed=p.seed,
            n_jobs=p.n_jobs,
            with_surprise=p.with_surprise,
            progress=scaled(ctx.progress, 0.02, 0.96 - ranking_share),
            **kwargs,
        )
        st.rows_out = p.k * (1 + len(report.baselines))
        st.extra["wall_seconds"] = report.model.wall_seconds
    rows: list[MetricRow] = _rows(report.model)
    for b in report.baselines:
        rows += _rows(b)
    result: dict[str, Any] = {
        "data": p.data.describe(),
        "n_ratings": ratings.n_ratings,
        "k": p.k,
        "seed": p.seed,
        "model": _summary(report.model),
        "baselines": [_summary(b) for b in report.baselines],
    }
    if report.surprise is not None:
        sur = report.surprise
        result["surprise"] = {
            "rmse": list(sur.rmse),
            "mae": list(sur.mae),
            "wall_seconds": sur.wall_seconds,
            "max_abs_difference": report.max_abs_difference,
        }
        for i, (rmse, mae) in enumerate(zip(sur.rmse, sur.mae, strict=True)):
            rows += [
                (f"surprise:{spec.name}", i, "rmse", rmse),
                (f"surprise:{spec.name}", i, "mae", mae),
            ]
    if p.ranking:
        with ctx.stage("ranking", rows_in=ratings.n_ratings) as st:
            specs = (spec, AlgoSpec("baseline"), AlgoSpec("popularity"))
            rk = evaluate_ranking(
                ratings,
                specs,
                n_test=p.ranking.n_test,
                k=p.ranking.k,
                threshold=p.ranking.threshold,
                progress=scaled(ctx.progress, 0.98 - ranking_share, ranking_share),
            )
            st.rows_out = rk.n_users_evaluated
        result["ranking"], ranking_rows = _ranking(rk)
        rows += ranking_rows
    with ctx.stage("store", rows_in=len(rows)), session_scope(ctx.settings.sqlalchemy_url) as s:
        result["metrics_stored"] = repo.add_metrics(s, ctx.job_id, None, rows)
    return result


def _ranking(rk: RankingReport) -> tuple[dict[str, Any], list[MetricRow]]:
    """The ranking part of a validation result, and its metric rows."""
    k = rk.k
    result = {
        "k": k,
        "threshold": rk.threshold,
        "n_test": rk.n_test,
        "users_evaluated": rk.n_users_evaluated,
        "results": [
            {
                "algorithm": r.algorithm,
                f"precision@{k}": r.precision,
                f"recall@{k}": r.recall,
                f"ndcg@{k}": r.ndcg,
                f"map@{k}": r.map,
                "hit_rate": r.hit_rate,
                "coverage": r.coverage,
            }
            for r in rk.results
        ],
    }
    rows: list[MetricRow] = []
    for r in rk.results:
        for name, value in (
            (f"precision@{k}", r.precision),
            (f"recall@{k}", r.recall),
            (f"ndcg@{k}", r.ndcg),
            (f"map@{k}", r.map),
            ("hit_rate", r.hit_rate),
            ("coverage", r.coverage),
        ):
            rows.append((f"ranking:{r.algorithm}", None, name, value))
    return result, rows


def _run_implicit(ctx: JobContext, p: ValidateParams, spec: AlgoSpec) -> dict[str, Any]:
    if p.ranking is None:
        raise DataError(
            f"{spec.name} predicts no ratings and is validated by ranking only; turn ranking on"
        )
    with ctx.stage("load") as st:
        interactions = load_interactions(p.data, p.feedback, ctx.settings)
        st.rows_out = len(interactions.frame)
        st.extra.update(source=interactions.source, rows_read=interactions.rows_read)
    baselines = [b for b in IMPLICIT_BASELINES if b.name != spec.name] if p.baselines else []
    with ctx.stage("ranking", rows_in=len(interactions.frame)) as st:
        rk = evaluate_implicit_ranking(
            interactions.frame,
            [spec, *baselines],
            n_test=p.ranking.n_test,
            k=p.ranking.k,
            progress=scaled(ctx.progress, 0.02, 0.96),
        )
        st.rows_out = rk.n_users_evaluated
    ranking, rows = _ranking(rk)
    result: dict[str, Any] = {
        "data": p.data.describe(),
        "feedback": interactions.source,
        "n_interactions": len(interactions.frame),
        "seed": p.seed,
        "algorithm": spec.name,
        "params": spec.resolved_params(),
        "ranking": ranking,
    }
    with ctx.stage("store", rows_in=len(rows)), session_scope(ctx.settings.sqlalchemy_url) as s:
        result["metrics_stored"] = repo.add_metrics(s, ctx.job_id, None, rows)
    return result


KIND = JobKind("validate", ValidateParams, run, "k-fold CV with RMSE, MAE, MPE and ranking.")


def _run_als(ctx: JobContext, p: ValidateParams, spec: AlgoSpec) -> dict[str, Any]:
    """Spark ALS: k folds over one persisted Spark frame (``training.spark_als``)."""
    from backend.training.spark_als import validate_als

    fb = p.feedback or FeedbackParams()
    with ctx.stage("cross_validate") as st:
        cv, rows = validate_als(
            p.data, spec, ctx.settings, weights=fb.weights(), k=p.k, seed=p.seed
        )
        st.rows_out = len(cv.folds)
    result: dict[str, Any] = {
        "data": p.data.describe(), "k": p.k, "seed": p.seed,
        "model": {"algorithm": spec.name, "params": spec.resolved_params(), **cv.means},
    }  # fmt: skip
    with ctx.stage("store", rows_in=len(rows)), session_scope(ctx.settings.sqlalchemy_url) as s:
        result["metrics_stored"] = repo.add_metrics(s, ctx.job_id, None, rows)
    return result
