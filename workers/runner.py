"""Runs one attempt of a job: mark running, run the kind through the stage timer, record the end.

Idempotent: a redelivered message for a job that already ended does nothing, and a job whose
worker died mid-run starts a fresh attempt (its earlier stages stay, tagged with their attempt).
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from typing import Any

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.jobs import repository as repo
from backend.jobs.context import JobCancelled, TransientJobError
from backend.jobs.kinds import get_kind
from workers.stages import ProgressHook, StageTimer

log = logging.getLogger(__name__)


def start_attempt(settings: Settings, job_id: int) -> tuple[int, str, dict[str, Any]] | None:
    """Mark the job running; return (attempt, kind, params), or None if there is nothing to do."""
    with session_scope(settings.sqlalchemy_url) as s:
        job = repo.get_for_update(s, job_id)
        if job is None:
            log.warning("job %s does not exist; dropping its message", job_id)
            return None
        if job.state in repo.TERMINAL:
            log.info("job %s already %s; nothing to do", job_id, job.state)
            return None
        if job.cancel_requested:
            repo.finish(job, "cancelled")
            return None
        if job.state == "running":
            log.warning("job %s was running on a worker that died; running it again", job_id)
        job.state = "running"
        job.attempts += 1
        job.started_at = job.started_at or utcnow()
        job.message = f"attempt {job.attempts} started"
        job.worker = f"{socket.gethostname()}:{os.getpid()}"
        return job.attempts, job.kind, dict(job.params)


def execute(
    settings: Settings,
    job_id: int,
    *,
    on_progress: ProgressHook | None = None,
    retries_left: int = 0,
) -> str:
    """Run the job to its end and return the final state.

    A TransientJobError propagates (after the job is put back to queued) so that the task
    retries, while retries are left; after the last one the job fails with that error.
    """
    started = start_attempt(settings, job_id)
    if started is None:
        return "skipped"
    attempt, kind_name, raw_params = started
    kind = get_kind(kind_name)
    timer = StageTimer(settings, job_id, attempt, on_progress=on_progress)
    state, result, error = "failed", None, None
    try:
        if kind is None:
            raise RuntimeError(f"this worker does not know job kind {kind_name!r}")
        params = kind.params_model.model_validate(raw_params)
        result = kind.run(timer, params)
        state = "succeeded"
    except JobCancelled:
        state = "cancelled"
    except TransientJobError as exc:
        if retries_left <= 0:
            _record_end(settings, job_id, "failed", None, f"gave up after retries: {exc}")
            return "failed"
        with session_scope(settings.sqlalchemy_url) as s:
            job = repo.get_for_update(s, job_id)
            if job is not None and job.state == "running":
                job.state = "queued"
                job.message = f"retrying after a transient error: {exc}"
        raise
    except Exception as exc:
        log.exception("job %s failed", job_id)
        error = f"{type(exc).__name__}: {exc}"
        if not str(exc):
            error += "\n" + traceback.format_exc(limit=5)
    _record_end(settings, job_id, state, result, error)
    return state


def _record_end(
    settings: Settings, job_id: int, state: str, result: dict[str, Any] | None, error: str | None
) -> None:
    with session_scope(settings.sqlalchemy_url) as s:
        job = repo.get_for_update(s, job_id)
        if job is None or job.state in repo.TERMINAL:
            return
        if state == "succeeded" and job.cancel_requested:
            # Finished before it noticed the cancel: the work is done, keep the result.
            job.message = "finished before the cancel took effect"
        repo.finish(job, state, result=result, error=error)
        if state == "cancelled":
            job.message = "cancelled while running"
        elif state == "succeeded":
            job.message = "done"
