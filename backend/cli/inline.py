"""Run a job in this process, with the same row, stages and result as on a worker.

CLI commands such as ``recflow train`` use this so they work without an API or a worker running;
the job is still recorded in SQL exactly as if a worker had run it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.cli.output import fail, job_progress
from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.migrate import upgrade
from backend.db.session import session_scope
from backend.errors import AppError
from backend.jobs import repository as repo
from backend.jobs import runner, service


def run_inline(kind: str, params: dict[str, Any], *, quiet: bool = False) -> dict[str, Any]:
    """Create the job row, run it here with a progress bar, return the job as the API shows it."""
    # A command run in the user's own process reads with the user's own permissions: the roots
    # (RECFLOW_DATA_ROOTS) guard a server from its callers, not a user from their own files, so
    # here every path is allowed (still never /proc or /sys, still under the size cap).
    configured = get_settings()
    settings = configured.model_copy(update={"data_roots": [*configured.data_roots, Path("/")]})
    settings.ensure_dirs()
    upgrade(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as s:
        try:
            job, _ = service.create(s, kind, params, None, settings=settings)
        except AppError as exc:
            fail(exc.message)
        job_id = job.id
    try:
        if quiet:
            runner.execute(settings, job_id)
        else:
            with job_progress(f"{kind} job {job_id}") as bar:
                task = bar.add_task(kind, total=1.0, message="")
                runner.execute(
                    settings,
                    job_id,
                    on_progress=lambda f, m: bar.update(task, completed=f, message=m[:60]),
                )
    except KeyboardInterrupt:
        # The user stopped it: end the job here, or a supervisor would take the abandoned row
        # for a dead worker's and run the job again on a server worker.
        _end_interrupted(settings.sqlalchemy_url, job_id)
        raise
    with session_scope(settings.sqlalchemy_url) as s:
        done = repo.get(s, job_id, with_stages=True)
        assert done is not None
        return service.to_out(done).model_dump(mode="json")


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
