"""The stage timer: records ``job_stages`` rows and progress while a job's domain code runs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.db.tables import Job, JobStage
from backend.jobs.context import AttemptSuperseded, JobCancelled, StageRecord

log = logging.getLogger(__name__)

ProgressHook = Callable[[float, str], None]
T = TypeVar("T")

# How long a stage's own writes wait out a database that is unreachable (a restart, a failover)
# before the job fails with it.
DB_RETRY_S = 30.0


def with_db_retry(what: str, write: Callable[[], T], *, budget_s: float = DB_RETRY_S) -> T:
    """Run ``write`` (one short transaction), retrying while the database is unreachable."""
    deadline = time.monotonic() + budget_s
    wait = 0.2
    while True:
        try:
            return write()
        except DBAPIError as exc:
            if time.monotonic() + wait > deadline:
                raise
            log.warning("%s failed, retrying in %.1fs: %s", what, wait, exc.orig or exc)
            time.sleep(wait)
            wait = min(wait * 2, 2.0)


class StageTimer:
    """A ``JobContext`` for one attempt of one job.

    Each stage is written when it starts and again when it ends, in its own short transaction,
    so a user polling the job sees the stage that is running. Progress is written at most every
    ``min_interval_s`` and is where a cancel request is noticed.

    A stage's ``duration_s`` is its own time: the stages started or recorded while it runs (the
    micro-batches of an ingestion, say) are subtracted, and its ``extra`` then holds ``wall_s``
    and ``nested_s``. So the stages of a run add up to its time, and a report's shares of a
    job kind's time add up to one.
    """

    def __init__(
        self,
        settings: Settings,
        job_id: int,
        attempt: int,
        *,
        on_progress: ProgressHook | None = None,
        min_interval_s: float = 0.25,
        lost: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        # Set by the heartbeat when this attempt no longer owns the job row.
        self._lost = lost or threading.Event()
        self.job_id = job_id
        self.attempt = attempt
        self._url = settings.sqlalchemy_url
        self._on_progress = on_progress
        self._min_interval_s = min_interval_s
        self._last_write = 0.0
        self._last_check = 0.0
        # Seconds of nested stages, one entry per open stage (innermost last). ``record`` may be
        # called from another thread (a Spark callback), hence the lock.
        self._nested: list[float] = []
        self._lock = threading.Lock()

    def _add_nested(self, seconds: float) -> None:
        with self._lock:
            if self._nested:
                self._nested[-1] += seconds

    @contextmanager
    def stage(self, name: str, *, rows_in: int | None = None) -> Iterator[StageRecord]:
        record = StageRecord(name=name, rows_in=rows_in)
        started = utcnow()
        t0 = time.perf_counter()

        def begin() -> int:
            with session_scope(self._url, durable=False) as s:
                row = JobStage(
                    job_id=self.job_id,
                    attempt=self.attempt,
                    name=name,
                    started_at=started,
                    rows_in=rows_in,
                    extra={},
                )
                s.add(row)
                s.flush()
                job = s.get(Job, self.job_id)
                if job is not None:
                    job.message = f"stage {name}"
                return row.id

        stage_id = with_db_retry(f"job {self.job_id} stage {name} start", begin)
        ok = False
        with self._lock:
            self._nested.append(0.0)
        try:
            yield record
            ok = True
        finally:
            wall = time.perf_counter() - t0
            with self._lock:
                nested = self._nested.pop()
            self._add_nested(wall)
            duration = max(wall - nested, 0.0)
            finished = utcnow()

            def end() -> None:
                with session_scope(self._url, durable=False) as s:
                    row2 = s.get(JobStage, stage_id)
                    if row2 is not None:
                        row2.finished_at = finished
                        row2.duration_s = duration
                        row2.rows_in = record.rows_in
                        row2.rows_out = record.rows_out
                        extra: dict[str, Any] = dict(record.extra)
                        if nested:
                            extra.update(wall_s=wall, nested_s=nested)
                        if not ok:
                            extra["aborted"] = True
                        row2.extra = extra

            with_db_retry(f"job {self.job_id} stage {name} end", end)
            log.info("job %s stage %s took %.3fs", self.job_id, name, duration)

    def record(
        self,
        name: str,
        *,
        duration_s: float,
        rows_in: int | None = None,
        rows_out: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Write a stage that was timed elsewhere (e.g. a Spark micro-batch) as one finished row."""
        self._add_nested(duration_s)
        finished = utcnow()
        with session_scope(self._url, durable=False) as s:
            s.add(
                JobStage(
                    job_id=self.job_id,
                    attempt=self.attempt,
                    name=name,
                    started_at=finished - timedelta(seconds=duration_s),
                    finished_at=finished,
                    duration_s=duration_s,
                    rows_in=rows_in,
                    rows_out=rows_out,
                    extra=extra or {},
                )
            )

    def progress(self, fraction: float, message: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        now = time.monotonic()
        # Throttled; the end of the job writes progress 1.0 with its final state anyway.
        if now - self._last_write < self._min_interval_s or fraction >= 1.0:
            if self._on_progress is not None and fraction >= 1.0:
                self._on_progress(fraction, message)
            return
        self._last_write = now
        if self._on_progress is not None:
            self._on_progress(fraction, message)
        try:
            with session_scope(self._url, durable=False) as s:
                job = s.get(Job, self.job_id)
                if job is None:
                    return
                job.progress = fraction
                if message:
                    job.message = message[:500]
                cancel = job.cancel_requested
        except DBAPIError as exc:
            # Progress is telemetry: a database blip skips one write, the job goes on.
            log.warning("job %s progress not written: %s", self.job_id, exc.orig or exc)
            return
        self._last_check = now
        self._check_lease()
        if cancel:
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def _check_lease(self) -> None:
        if self._lost.is_set():
            raise AttemptSuperseded(
                f"attempt {self.attempt} of job {self.job_id} no longer owns the job"
            )

    def pause_point(self, name: str) -> None:
        if not name or self.settings.job_pause_at != name:
            return
        log.warning("job %s waits at %s (RECFLOW_JOB_PAUSE_AT)", self.job_id, name)
        with session_scope(self._url) as s:
            job = s.get(Job, self.job_id)
            if job is not None:
                job.message = f"paused at {name} (RECFLOW_JOB_PAUSE_AT)"
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            time.sleep(0.1)
            self.check_cancelled()

    def check_cancelled(self) -> None:
        self._check_lease()
        now = time.monotonic()
        if now - self._last_check < self._min_interval_s:
            return
        self._last_check = now
        try:
            with session_scope(self._url, durable=False) as s:
                job = s.get(Job, self.job_id)
                cancel = job is None or job.cancel_requested
        except DBAPIError as exc:
            log.warning("job %s cancel check skipped: %s", self.job_id, exc.orig or exc)
            return
        if cancel:
            raise JobCancelled(f"job {self.job_id} was cancelled")
