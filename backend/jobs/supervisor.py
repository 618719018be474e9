"""The job supervisor: no committed job is lost, no job stays stuck behind a dead worker.

Two passes, run every ``job_supervisor_interval_s`` by a thread in every worker's main process and
in every API process (and once by ``recflow jobs reap``):

- the **reaper** finds running jobs whose heartbeat is older than ``job_heartbeat_timeout_s``:
  their worker is gone (killed, its host lost, its database connection dead). Each is re-queued
  while its retry budget lasts (``job_max_retries`` restarts after the first attempt), else failed
  with "its worker stopped responding"; a job whose cancel was requested is cancelled instead;
- the **reconciler** sends queued jobs that have no message: never sent (the submitter died
  between its commit and its send) after ``job_dispatch_grace_s``, and re-queued by the reaper at
  once; and sends again queued jobs whose message was sent ``job_redispatch_after_s`` ago (doubled
  with every re-send) without starting, because a broker can lose messages (Redis restarted
  without persistence; kombu's SQL transport never redelivers the message of a dead worker).

Several supervisors may run at once: each transition is a compare-and-set UPDATE (see
``repository``), so for each job one of them wins and the others skip it. A duplicate message
is harmless, because the worker drops a message for a job that has ended or that runs with a
fresh heartbeat elsewhere.

This module is part of the job platform: it imports no domain and no worker code.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.session import get_engine
from backend.jobs import repository as repo
from backend.jobs import service

log = logging.getLogger(__name__)

BATCH = 500  # jobs per query per pass; the next pass takes the rest

# The supervisors' engines: a forked child (a Celery pool process) must not use, or close, the
# connections it inherited from its parent.
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_engines_in_child() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_engines_in_child)


@dataclass
class PassReport:
    """What one pass did, by job id."""

    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)
    send_errors: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(
            (self.requeued, self.failed, self.cancelled, self.sent, self.resent, self.send_errors)
        )


def reap(session_factory: sessionmaker[Session], settings: Settings, now: datetime) -> PassReport:
    """Re-queue, fail or cancel each running job whose heartbeat is stale. Commits per job."""
    report = PassReport()
    timeout = settings.job_heartbeat_timeout_s
    cutoff = now - timedelta(seconds=timeout)
    with session_factory() as s:
        stale = repo.stale_running(s, cutoff, BATCH)
    for job in stale:
        with session_factory() as s, s.begin():
            if job.cancel_requested:
                if repo.end_stale(
                    s,
                    job,
                    "cancelled",
                    error=None,
                    message="cancelled; its worker had stopped responding",
                    now=now,
                ):
                    report.cancelled.append(job.id)
            elif job.attempts > settings.job_max_retries:
                error = (
                    f"its worker stopped responding (no heartbeat for over {timeout:g} s) and "
                    f"the retry budget is spent ({job.attempts} attempts; "
                    "RECFLOW_JOB_MAX_RETRIES allows "
                    f"{settings.job_max_retries} retries)"
                )
                if repo.end_stale(s, job, "failed", error=error, message=error, now=now):
                    report.failed.append(job.id)
            elif repo.requeue_stale(
                s,
                job,
                f"attempt {job.attempts}: its worker stopped responding (no heartbeat for over "
                f"{timeout:g} s); queued again",
            ):
                report.requeued.append(job.id)
    for name, ids in (
        ("re-queued", report.requeued),
        ("failed", report.failed),
        ("cancelled", report.cancelled),
    ):
        if ids:
            log.warning("reaper: %s job(s) %s whose worker stopped responding", name, ids)
    return report


def reconcile(
    session_factory: sessionmaker[Session],
    celery: Celery,
    settings: Settings,
    now: datetime,
    report: PassReport | None = None,
) -> PassReport:
    """Send queued jobs that have no message, or whose message seems lost."""
    report = report or PassReport()
    grace = now - timedelta(seconds=settings.job_dispatch_grace_s)
    bound = settings.job_redispatch_after_s
    with session_factory() as s:
        never = repo.undispatched(s, grace, BATCH)
        old = repo.dispatched_before(s, now - timedelta(seconds=bound), BATCH)
        to_cancel = repo.queued_cancel_requested(s, grace, BATCH)
    for job in to_cancel:
        with session_factory() as s, s.begin():
            if repo.end_unstarted(
                s, job, "cancelled", error=None, message="cancelled before it started", now=now
            ):
                report.cancelled.append(job.id)
    for job in never:
        if _claim_and_send(session_factory, celery, job, now, report):
            report.sent.append(job.id)
        elif report.send_errors:
            old = []  # the broker is down: the next pass tries again
            break
    for job in old:
        assert job.dispatched_at is not None
        # Backoff: a long backlog of queued jobs is not re-sent every period.
        wait = bound * 2 ** min(max(job.dispatches - 1, 0), 6)
        if job.dispatched_at >= now - timedelta(seconds=wait):
            continue
        if _claim_and_send(session_factory, celery, job, now, report):
            report.resent.append(job.id)
        elif report.send_errors:
            break
    if report.sent:
        log.warning("reconciler: sent job(s) %s that were queued without a message", report.sent)
    if report.resent:
        log.warning(
            "reconciler: sent job(s) %s again, queued %g s or more after their last message",
            report.resent,
            bound,
        )
    return report


def _claim_and_send(
    session_factory: sessionmaker[Session],
    celery: Celery,
    job: repo.Seen,
    now: datetime,
    report: PassReport,
) -> bool:
    with session_factory() as s, s.begin():
        if not repo.claim_dispatch(s, job, now):
            return False  # another supervisor, or the submitter, got there first
    try:
        task_id = service.send(celery, job.id)
    except Exception as exc:  # kombu raises several types for an unreachable broker
        log.warning("supervisor could not send job %s (broker down?): %s", job.id, exc)
        with session_factory() as s, s.begin():
            repo.release_dispatch(s, job, now)
        report.send_errors.append(job.id)
        return False
    with session_factory() as s, s.begin():
        repo.set_task_id(s, job.id, task_id)
    return True


def run_once(
    settings: Settings, celery: Celery, session_factory: sessionmaker[Session] | None = None
) -> PassReport:
    """One reaper pass, then one reconciler pass (which sends what the reaper re-queued)."""
    factory = session_factory or sessionmaker(bind=get_engine(settings.sqlalchemy_url))
    now = utcnow()
    report = reap(factory, settings, now)
    return reconcile(factory, celery, settings, now, report)


class Supervisor:
    """A daemon thread that runs ``run_once`` every ``job_supervisor_interval_s``.

    It has its own engine (one connection), so it never shares a connection with the process's
    other threads, and a forked child (a Celery pool process) drops that engine's connections
    without closing them under the parent.
    """

    def __init__(self, settings: Settings, celery: Celery, *, name: str = "supervisor") -> None:
        self.settings = settings
        self.celery = celery
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        url = self.settings.sqlalchemy_url
        kwargs: dict[str, object] = {"pool_pre_ping": True, "pool_size": 1, "max_overflow": 1}
        if url.startswith("sqlite"):
            kwargs = {"connect_args": {"timeout": 30, "check_same_thread": False}}
        self._engine = engine = create_engine(url, **kwargs)  # type: ignore[arg-type]
        _ENGINES.add(engine)
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(factory,), name=f"recflow-{self.name}", daemon=True
        )
        self._thread.start()
        log.info(
            "%s started: heartbeat timeout %g s, dispatch grace %g s, every %g s",
            self.name,
            self.settings.job_heartbeat_timeout_s,
            self.settings.job_dispatch_grace_s,
            self.settings.job_supervisor_interval_s,
        )

    def _loop(self, factory: sessionmaker[Session]) -> None:
        interval = self.settings.job_supervisor_interval_s
        while not self._stop.wait(interval):
            try:
                run_once(self.settings, self.celery, factory)
            except DBAPIError as exc:
                # The database restarts or fails over: try again at the next tick.
                log.warning("%s pass failed, retrying in %g s: %s", self.name, interval, exc.orig)
            except Exception:
                log.exception("%s pass failed; retrying in %g s", self.name, interval)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
