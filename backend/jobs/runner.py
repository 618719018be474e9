"""Runs one attempt of a job: start it, run the kind through the stage timer, record the end.

Exactly once: the job row decides, not the message. A message for a job that has ended, or that
runs with a fresh heartbeat on another worker, is dropped (acknowledged, nothing run), so a
redelivered or re-sent message never runs a job twice at the same time. A job left running by a
worker that is gone (its heartbeat is stale, or its process on this host no longer exists) is
taken over as a new attempt; its earlier stages stay, tagged with their attempt. Every write of an
attempt names its attempt number, so a superseded attempt can record nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.jobs import repository as repo
from backend.jobs.context import AttemptSuperseded, JobCancelled, TransientJobError
from backend.jobs.kind import installed
from backend.jobs.redact import public_error
from backend.jobs.service import parse_params
from backend.jobs.stages import ProgressHook, StageTimer, with_db_retry

log = logging.getLogger(__name__)


def worker_id() -> str:
    """This process as the job row names it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Attempt:
    number: int
    kind: str
    params: dict[str, Any]


def _process_gone(worker: str | None) -> bool:
    """Whether ``worker`` (host:pid) is a process of this host that no longer runs.

    Its heartbeat has then stopped for good, even if it is not yet stale: a pool process killed
    under a live Celery worker has its message redelivered at once, and the new attempt need not
    wait for the reaper. A process of another host is never judged here (its heartbeat is).
    """
    if not worker or ":" not in worker:
        return False
    host, _, pid_text = worker.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child not yet reaped by its parent is a zombie: gone all the same
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def start_attempt(settings: Settings, job_id: int) -> Attempt | None:
    """Mark the job running as a new attempt; None when this message must be dropped."""
    timeout = timedelta(seconds=settings.job_heartbeat_timeout_s)
    for _ in range(5):  # a lost compare-and-set means another process moved the job: re-read
        with session_scope(settings.sqlalchemy_url) as s:
            seen = repo.seen(s, job_id)
            if seen is None:
                log.warning("job %s does not exist; dropping its message", job_id)
                return None
            if seen.state in repo.TERMINAL:
                log.info("job %s already %s; dropping a duplicate message", job_id, seen.state)
                return None
            now = utcnow()
            if seen.state == "queued" and seen.cancel_requested:
                repo.end_unstarted(
                    s,
                    seen,
                    "cancelled",
                    error=None,
                    message="cancelled before it started",
                    now=now,
                )
                return None
            if seen.state == "running":
                beat = seen.heartbeat_at or seen.started_at or seen.created_at
                stale = beat < now - timeout
                if not stale and not _process_gone(seen.worker):
                    log.info(
                        "job %s runs on %s with a fresh heartbeat; dropping a duplicate message",
                        job_id,
                        seen.worker,
                    )
                    return None
                if seen.cancel_requested or seen.attempts > settings.job_max_retries:
                    # Cancelled, or out of retries: the reaper ends it; nothing to run.
                    log.info("job %s lost its worker; leaving it to the reaper", job_id)
                    return None
                log.warning(
                    "job %s: its worker %s is gone; starting attempt %s",
                    job_id,
                    seen.worker,
                    seen.attempts + 1,
                )
            number = seen.attempts + 1
            if repo.start(s, seen, worker_id(), now, f"attempt {number} started"):
                job = repo.get(s, job_id)
                assert job is not None
                return Attempt(number, job.kind, dict(job.params))
    log.warning("job %s changed under five starts in a row; dropping this message", job_id)
    return None


class Heartbeat:
    """Writes the attempt's heartbeat every ``job_heartbeat_s`` from its own thread.

    Each beat is one short transaction in its own session. A database blip is logged and the
    beat is retried a second later. A beat that finds the row no longer held by this attempt
    (re-queued by the reaper, cancelled) sets ``lost``; the stage timer then stops the job.
    """

    def __init__(self, settings: Settings, job_id: int, attempt: int) -> None:
        self._url = settings.sqlalchemy_url
        self._interval = settings.job_heartbeat_s
        self.job_id = job_id
        self.attempt = attempt
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"heartbeat-job-{job_id}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        wait = self._interval
        while not self._stop.wait(wait):
            try:
                with session_scope(self._url) as s:
                    held = repo.beat(s, self.job_id, self.attempt, utcnow())
            except Exception as exc:
                log.warning("heartbeat of job %s failed, retrying: %s", self.job_id, exc)
                wait = min(1.0, self._interval)
                continue
            wait = self._interval
            if not held:
                log.warning(
                    "job %s: attempt %s no longer owns the job; stopping it",
                    self.job_id,
                    self.attempt,
                )
                self.lost.set()
                return


def execute(
    settings: Settings,
    job_id: int,
    *,
    on_progress: ProgressHook | None = None,
    retries_left: int = 0,
) -> str:
    """Run the job to its end and return the final state.

    A TransientJobError propagates (after the job is put back to queued) so that the task
    retries, while retries are left; after the last one the job fails with that error. The
    budget is counted on the row (``attempts``), shared with the reaper's re-queues.
    """
    started = start_attempt(settings, job_id)
    if started is None:
        return "skipped"
    attempt = started.number
    retries_left = min(retries_left, settings.job_max_retries + 1 - attempt)
    kind = installed().get(started.kind)
    with Heartbeat(settings, job_id, attempt) as heartbeat:
        timer = StageTimer(settings, job_id, attempt, on_progress=on_progress, lost=heartbeat.lost)
        state, result, error = "failed", None, None
        try:
            if kind is None:
                raise RuntimeError(
                    f"job kind {started.kind!r} is not in the catalog of this process"
                )
            # Checked again as at submit time (roots, ceilings): a file may have gone since.
            params = parse_params(started.kind, started.params, settings)
            result = kind.run(timer, params)
            state = "succeeded"
        except AttemptSuperseded:
            log.warning("job %s: attempt %s was superseded; nothing recorded", job_id, attempt)
            return "superseded"
        except JobCancelled:
            state = "cancelled"
        except TransientJobError as exc:
            if retries_left <= 0:
                _record_end(
                    settings,
                    job_id,
                    attempt,
                    "failed",
                    None,
                    f"gave up after retries: {public_error(exc, settings)}",
                )
                return "failed"
            with session_scope(settings.sqlalchemy_url) as s:
                repo.requeue_attempt(
                    s,
                    job_id,
                    attempt,
                    f"retrying after a transient error: {public_error(exc, settings)}",
                    utcnow(),
                )
            raise
        except Exception as exc:
            # The traceback goes to the log only: the job's error is public.
            log.exception("job %s failed", job_id)
            error = public_error(exc, settings)
    return _record_end(settings, job_id, attempt, state, result, error)


def _record_end(
    settings: Settings,
    job_id: int,
    attempt: int,
    state: str,
    result: dict[str, Any] | None,
    error: str | None,
) -> str:
    """Write the attempt's end (waiting out a database restart); returns the state recorded,
    or "superseded" when the attempt no longer owns the job."""

    def write() -> str:
        with session_scope(settings.sqlalchemy_url) as s:
            seen = repo.seen(s, job_id)
            if seen is None:
                return "skipped"
            message = {
                "succeeded": "done",
                "cancelled": "cancelled while running",
                "failed": "failed",
            }[state]
            if state == "succeeded" and seen.cancel_requested:
                # Finished before it noticed the cancel: the work is done, keep the result.
                message = "finished before the cancel took effect"
            if repo.end_attempt(
                s, job_id, attempt, state, result=result, error=error, message=message, now=utcnow()
            ):
                return state
            log.warning(
                "job %s: attempt %s no longer owns the job (now %s, attempt %s); its %s end "
                "is dropped",
                job_id,
                attempt,
                seen.state,
                seen.attempts,
                state,
            )
            return "superseded"

    return with_db_retry(f"job {job_id} end", write)
