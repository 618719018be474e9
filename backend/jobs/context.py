"""What a job's domain code may ask of the platform while it runs."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from backend.config import Settings


class JobCancelled(Exception):
    """Raised inside a job when a user asked to cancel it."""


class AttemptSuperseded(JobCancelled):
    """Raised inside a job whose attempt no longer owns the row (the reaper re-queued it after
    its heartbeat went stale, or a cancel ended it): its result would be dropped, so it stops."""


class TransientJobError(Exception):
    """A failure worth retrying (a service briefly unreachable). Anything else fails the job."""


@dataclass
class StageRecord:
    """Mutable while the stage runs; the timer writes it to ``job_stages`` when it ends."""

    name: str
    rows_in: int | None = None
    rows_out: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class JobContext(Protocol):
    job_id: int
    attempt: int
    settings: Settings

    def stage(
        self, name: str, *, rows_in: int | None = None
    ) -> AbstractContextManager[StageRecord]: ...

    def record(
        self,
        name: str,
        *,
        duration_s: float,
        rows_in: int | None = None,
        rows_out: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record a stage timed elsewhere (a Spark micro-batch, say) as one finished row."""
        ...

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress in [0, 1]; raises JobCancelled when a cancel was requested."""
        ...

    def check_cancelled(self) -> None: ...

    def pause_point(self, name: str) -> None:
        """A named point where a fault can be injected: waits there (up to an hour) when
        ``RECFLOW_JOB_PAUSE_AT`` names it, e.g. ``train.after_save``; else returns at once."""
        ...
