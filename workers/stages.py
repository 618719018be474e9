"""The stage timer: records ``job_stages`` rows and progress while a job's domain code runs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.db.tables import Job, JobStage
from backend.jobs.context import JobCancelled, StageRecord

log = logging.getLogger(__name__)

ProgressHook = Callable[[float, str], None]


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
    ) -> None:
        self.settings = settings
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
            stage_id = row.id
            job = s.get(Job, self.job_id)
            if job is not None:
                job.message = f"stage {name}"
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
            with session_scope(self._url, durable=False) as s:
                row2 = s.get(JobStage, stage_id)
                if row2 is not None:
                    row2.finished_at = utcnow()
                    row2.duration_s = duration
                    row2.rows_in = record.rows_in
                    row2.rows_out = record.rows_out
                    extra: dict[str, Any] = dict(record.extra)
                    if nested:
                        extra.update(wall_s=wall, nested_s=nested)
                    if not ok:
                        extra["aborted"] = True
                    row2.extra = extra
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
        with session_scope(self._url, durable=False) as s:
            job = s.get(Job, self.job_id)
            if job is None:
                return
            job.progress = fraction
            if message:
                job.message = message[:500]
            cancel = job.cancel_requested
        self._last_check = now
        if cancel:
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def check_cancelled(self) -> None:
        now = time.monotonic()
        if now - self._last_check < self._min_interval_s:
            return
        self._last_check = now
        with session_scope(self._url, durable=False) as s:
            job = s.get(Job, self.job_id)
            cancel = job is None or job.cancel_requested
        if cancel:
            raise JobCancelled(f"job {self.job_id} was cancelled")
