"""Run a job in this process, with the same row, stages and result as on a worker.

CLI commands such as ``recflow train`` use this so they work without an API or a worker running;
the job is still recorded in SQL exactly as if a worker had run it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backend.cli.errors import fail, mode
from backend.cli.output import job_progress
from backend.config import Settings, get_settings
from backend.db.base import utcnow
from backend.db.migrate import upgrade
from backend.db.session import session_scope
from backend.jobs import repository as repo
from backend.jobs import runner, service


def run_inline(kind: str, params: dict[str, Any], *, quiet: bool = False) -> dict[str, Any]:
    """Create the job row, run it here with a progress bar, return the job as the API shows it.

    Invalid params raise the platform's ``InvalidInputError``; a job that fails or is cancelled
    ends the command (exit 1) with the job's error on one line.
    """
    # A command run in the user's own process reads with the user's own permissions: the roots
    # (RECFLOW_DATA_ROOTS) guard a server from its callers, not a user from their own files, so
    # here every path is allowed (still never /proc or /sys, still under the size cap).
    configured = get_settings()
    settings = configured.model_copy(update={"data_roots": [*configured.data_roots, Path("/")]})
    settings.ensure_dirs()
    upgrade(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as s:
        job, _ = service.create(s, kind, params, None, settings=settings)
        job_id = job.id
    try:
        with _failures_reported_once():
            _execute(settings, kind, job_id, quiet=quiet)
    except KeyboardInterrupt:
        # The user stopped it: end the job here, or a supervisor would take the abandoned row
        # for a dead worker's and run the job again on a server worker.
        _end_interrupted(settings.sqlalchemy_url, job_id)
        raise
    with session_scope(settings.sqlalchemy_url) as s:
        done = repo.get(s, job_id, with_stages=True)
        assert done is not None
        out = service.to_out(done).model_dump(mode="json")
    if out["state"] != "succeeded":
        fail(f"{kind} job {job_id} {out['state']}: {out.get('error') or out.get('message')}")
    return out


def _execute(settings: Settings, kind: str, job_id: int, *, quiet: bool) -> None:
    if quiet:
        runner.execute(settings, job_id)
        return
    with job_progress(f"{kind} job {job_id}") as bar:
        task = bar.add_task(kind, total=1.0, message="")
        runner.execute(
            settings,
            job_id,
            on_progress=lambda f, m: bar.update(task, completed=f, message=m[:60]),
        )


class _WithoutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None


@contextmanager
def _failures_reported_once() -> Iterator[None]:
    """The runner logs a failed job with its traceback, for a worker's log. Here the command
    reports the job's error itself, on one line; the traceback shows only with --debug."""
    if mode.debug:
        yield
        return
    quiet = _WithoutTraceback()
    log = logging.getLogger(runner.__name__)
    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


def _end_interrupted(url: str, job_id: int) -> None:
    with session_scope(url) as s:
        seen = repo.seen(s, job_id)
        if seen is None or seen.state in repo.TERMINAL:
            return
        message = "cancelled: interrupted in the command that ran it"
        if seen.state == "running":
            repo.request_cancel(s, job_id)
            repo.end_attempt(
                s,
                job_id,
                seen.attempts,
                "cancelled",
                result=None,
                error=None,
                message=message,
                now=utcnow(),
            )
        else:
            repo.end_unstarted(s, seen, "cancelled", error=None, message=message, now=utcnow())
