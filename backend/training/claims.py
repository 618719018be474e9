"""One version per train job, idempotent across save and register.

A job claims its version before it saves: ``models/.claims/<version>.json`` names the job (id and
creation time, which tell two databases' job 1 apart), created with O_EXCL so that of two jobs
asking for one version, one wins and the other gets "version already exists". Only the owner of
a claim touches the artifact directory of that version and its staging directories.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backend.db.session import session_scope
from backend.jobs import repository as jobs_repo
from backend.jobs.context import JobContext
from backend.paths import shown
from backend.recsys.artifacts import load_artifact
from backend.recsys.errors import CorruptArtifactError, DataError
from backend.registry import repository as repo

CLAIMS_DIR = ".claims"


def version_of(ctx: JobContext, asked: str | None, algorithm: str) -> tuple[str, dict[str, Any]]:
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
            if (models_dir / version).exists() or registered(ctx, version):
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
        if (models_dir / version).exists() or registered(ctx, version):
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


def registered(ctx: JobContext, version: str) -> bool:
    """Whether ``version`` has a models row."""
    with session_scope(ctx.settings.sqlalchemy_url) as s:
        return repo.by_version(s, version) is not None


def registered_by_this_job(ctx: JobContext, version: str) -> dict[str, Any] | None:
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


def own_artifact(models_dir: Path, version: str, owner: dict[str, Any]) -> dict[str, Any] | None:
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


def sweep_orphans(ctx: JobContext) -> list[str]:
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
        if registered(ctx, claim.stem):
            claim.unlink(missing_ok=True)  # registered: the claim guards nothing any more
            continue
        discard(models_dir, claim.stem, holder)
        removed.append(claim.stem)
    return removed


def discard(models_dir: Path, version: str, owner: dict[str, Any]) -> None:
    """Remove this job's unregistered artifact, staging directories and claim."""
    if _read_claim(_claim_file(models_dir, version)) != owner:
        return
    for staging in models_dir.glob(f".{version}.*.tmp"):
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(models_dir / version, ignore_errors=True)
    _claim_file(models_dir, version).unlink(missing_ok=True)
