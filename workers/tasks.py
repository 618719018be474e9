"""Thin Celery tasks: take an id, call the runner, let the row tell the story."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DBAPIError

from backend.config import get_settings
from backend.jobs import runner
from backend.jobs.context import TransientJobError
from backend.jobs.queue import RUN_JOB_TASK
from workers.celery_app import app


@app.task(
    name=RUN_JOB_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=get_settings().job_max_retries,
)
def run_job(self: Any, job_id: int) -> str:
    def report(fraction: float, message: str) -> None:
        if self.request.id:
            self.update_state(state="PROGRESS", meta={"progress": fraction, "message": message})

    try:
        return runner.execute(
            get_settings(),
            job_id,
            on_progress=report,
            retries_left=self.max_retries - self.request.retries,
        )
    except TransientJobError as exc:
        # Exponential backoff: 2, 4, 8 ... seconds, capped at a minute.
        raise self.retry(exc=exc, countdown=min(60, 2 ** (self.request.retries + 1))) from exc
    except DBAPIError as exc:
        # The database is unreachable (a restart): try the message again later. The row decides
        # what that retry does: start the job, or drop the message if it runs or has ended.
        raise self.retry(exc=exc, countdown=min(60, 2 ** (self.request.retries + 1))) from exc
