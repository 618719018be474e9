"""``train``: fit on all the ratings, store a versioned artifact, register it, maybe promote.

Stages: load, validate (when ``validate_k`` > 0; its RMSE feeds the promotion gate), fit, save
(atomic: a half-written artifact is never visible), register (a ``models`` row, metrics rows),
and activation according to ``activate``: ``never``, ``always``, or ``if_better`` (the gate:
only when the new validation RMSE is no worse than the active model's).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.jobs import repository as jobs_repo
from backend.jobs.context import AttemptSuperseded, JobContext, TransientJobError
from backend.jobs.kind import JobKind
from backend.jobs.params import JobParams, NJobs, at_most
from backend.jsonable import to_jsonable
from backend.paths import shown
from backend.recsys.algorithms import AlgoSpec, fit
from backend.recsys.artifacts import load_artifact, save_artifact
from backend.recsys.crossval import cross_validate
from backend.recsys.datasets import load_items
from backend.recsys.errors import CorruptArtifactError, DataError
from backend.registry import repository as repo
from backend.registry import service as registry
from backend.registry.schemas import VersionLabel
from backend.training.sources import AlgoParams, ItemsParams, RatingsParams, load, scaled

CLAIMS_DIR = ".claims"


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

    @field_validator("validate_k")
    @classmethod
    def _folds(cls, v: int, info: ValidationInfo) -> int:
        if v == 1:
            raise ValueError("validate_k must be 0 (no validation) or at least 2 folds")
        at_most(v, info, "max_cv_folds")
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
    metrics.update(n_users=model.n_users, n_items=model.n_items, n_ratings=ratings.n_ratings)
    models_dir = ctx.settings.models_dir
    # The version is fixed per job, so that a retry (after its worker died) finds its own work:
    # registered already (reuse it), saved but not registered (register it), or half-written.
    version, owner = _version_of(ctx, p.version, spec.name)
    swept = _sweep_orphans(ctx)
    earlier = _registered_by_this_job(ctx, version)
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
        saved = _own_artifact(models_dir, version, owner)
        if saved is not None:
            metrics = saved  # registered as the earlier attempt saved it
            st.extra["reused"] = True
        else:
            path = save_artifact(
                model,
                models_dir,
                version,
                metrics=metrics,
                fingerprint=ratings.fingerprint,
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
                fingerprint=ratings.fingerprint,
                metrics=metrics,
                n_users=model.n_users,
                n_items=model.n_items,
                n_ratings=ratings.n_ratings,
                job_id=ctx.job_id,
                metric_rows=metric_rows,
                activation=p.activate,
                verified=True,
            )
    except (TransientJobError, AttemptSuperseded):
        raise  # a retry, or the attempt that superseded this one, registers the artifact
    except Exception:
        # Failing for good: leave no unregistered artifact. Never remove a registered one (an
        # attempt that raced this one may have registered it).
        if not _registered(ctx, version):
            _discard(models_dir, version, owner)
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


# --- One version per job, idempotent across save and register --------------------------------
#
# A job claims its version before it saves: ``models/.claims/<version>.json`` names the job (id
# and creation time, which tell two databases' job 1 apart), created with O_EXCL so that of two
# jobs asking for one version, one wins and the other gets "version already exists". Only the
# owner of a claim touches the artifact directory of that version and its staging directories.


def _version_of(ctx: JobContext, asked: str | None, algorithm: str) -> tuple[str, dict[str, Any]]:
    """The job's version (asked, or derived from the job) and the claim that marks it as ours."""
    with session_scope(ctx.settings.sqlalchemy_url) as s:
        job = jobs_repo.get(s, ctx.job_id)
        created = job.created_at if job is not None else None
    stamp = (created or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    version = asked or f"{algorithm}-{stamp}-j{ctx.job_id}"
    owner = {
        "job_id": ctx.job_id,
        "job_created_at": None if created is None else created.isoformat(),
    }
    _claim(ctx, version, owner)
    return version, owner


def _claim_file(models_dir: Path, version: str) -> Path:
    return models_dir / CLAIMS_DIR / f"{version}.json"


def _claim(ctx: JobContext, version: str, owner: dict[str, Any]) -> None:
    models_dir = ctx.settings.models_dir
    claim = _claim_file(models_dir, version)
    claim.parent.mkdir(parents=True, exist_ok=True)
    taken = DataError(f"model version {version!r} already exists; pick a new version")
    for _ in range(3):
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_claim(claim)
            if holder == owner:
                return  # an earlier attempt of this job claimed it
            if (models_dir / version).exists() or _registered(ctx, version):
                raise taken from None
            if not _claim_is_stale(ctx, holder):
                raise DataError(
                    f"model version {version!r} is being trained by job {holder.get('job_id')}; "
                    "pick a new version"
                ) from None
            claim.unlink(missing_ok=True)  # its job ended without saving: free again
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(owner, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if (models_dir / version).exists() or _registered(ctx, version):
            claim.unlink(missing_ok=True)  # a version from before claims, or saved by hand
            raise taken
        return
    raise taken


def _read_claim(claim: Path) -> dict[str, Any]:
    try:
        data = json.loads(claim.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _claim_is_stale(ctx: JobContext, holder: dict[str, Any]) -> bool:
    """A claim whose job has ended (or is not this database's job) holds nothing any more."""
    job_id = holder.get("job_id")
    if not isinstance(job_id, int):
        return True
    with session_scope(ctx.settings.sqlalchemy_url) as s:
        job = jobs_repo.get(s, job_id)
        if job is None or job.created_at.isoformat() != holder.get("job_created_at"):
            return True
        return job.state in jobs_repo.TERMINAL


def _registered(ctx: JobContext, version: str) -> bool:
    with session_scope(ctx.settings.sqlalchemy_url) as s:
        return repo.by_version(s, version) is not None


def _registered_by_this_job(ctx: JobContext, version: str) -> dict[str, Any] | None:
    """The result of an earlier attempt that registered ``version``, if one did."""
    with session_scope(ctx.settings.sqlalchemy_url) as s:
        row = repo.by_version(s, version)
        if row is None:
            return None
        if row.job_id != ctx.job_id:
            raise DataError(f"model version {version!r} already exists; pick a new version")
        return {
            "model_id": row.id,
            "version": row.version,
            "algorithm": row.algorithm,
            "params": row.params,
            "metrics": row.metrics,
            "activated": row.active,
            "activation_reason": "registered by an earlier attempt of this job",
            "path": shown(Path(row.path), ctx.settings),
        }


def _own_artifact(models_dir: Path, version: str, owner: dict[str, Any]) -> dict[str, Any] | None:
    """Clear what dead attempts of this job left; return the metrics of a complete artifact.

    Staging directories (``.<version>.*.tmp``) are removed; a complete artifact (its manifest
    checks) is kept and its metrics returned; an incomplete one is removed, to be saved again.
    """
    assert _read_claim(_claim_file(models_dir, version)) == owner, "only the owner clears"
    for staging in models_dir.glob(f".{version}.*.tmp"):
        shutil.rmtree(staging, ignore_errors=True)
    target = models_dir / version
    if not target.exists():
        return None
    try:
        return load_artifact(target).metrics
    except (CorruptArtifactError, DataError, OSError, ValueError):
        shutil.rmtree(target, ignore_errors=True)
        return None


def _sweep_orphans(ctx: JobContext) -> list[str]:
    """Remove the unregistered artifacts of train jobs that have ended; return their versions.

    A job killed between save and register on its last attempt is failed by the reaper, which
    knows nothing of artifacts: what it saved stays behind, with its claim. Every train run
    clears such leftovers, but only those whose claim names a job of this database (same id and
    creation time) that has ended, and whose version is not registered.
    """
    models_dir = ctx.settings.models_dir
    removed: list[str] = []
    for claim in sorted((models_dir / CLAIMS_DIR).glob("*.json")):
        holder = _read_claim(claim)
        job_id = holder.get("job_id")
        if not isinstance(job_id, int) or job_id == ctx.job_id:
            continue
        with session_scope(ctx.settings.sqlalchemy_url) as s:
            job = jobs_repo.get(s, job_id)
            ended = (
                job is not None
                and job.created_at.isoformat() == holder.get("job_created_at")
                and job.state in jobs_repo.TERMINAL
            )
        if not ended:
            continue
        if _registered(ctx, claim.stem):
            claim.unlink(missing_ok=True)  # registered: the claim guards nothing any more
            continue
        _discard(models_dir, claim.stem, holder)
        removed.append(claim.stem)
    return removed


def _discard(models_dir: Path, version: str, owner: dict[str, Any]) -> None:
    """Remove this job's unregistered artifact, staging directories and claim."""
    if _read_claim(_claim_file(models_dir, version)) != owner:
        return
    for staging in models_dir.glob(f".{version}.*.tmp"):
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(models_dir / version, ignore_errors=True)
    _claim_file(models_dir, version).unlink(missing_ok=True)


KIND = JobKind("train", TrainParams, run, "Fit a model, store a versioned artifact, register it.")
