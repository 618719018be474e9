"""The snapshot the monitor publishes, as frozen dataclasses whose fields are its JSON.

``backend.jsonable.to_jsonable(snapshot)`` is the whole conversion; readers (the monitoring API,
its page and ``/metrics``) read the resulting object from the snapshot store, and
``backend.monitoring.schemas`` documents it at the API boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from backend.monitoring.alerts import AlertKey
from backend.monitoring.ledger import Totals
from backend.monitoring.windows import WindowSummary

#: The snapshot's format; readers accept extra fields, so adding one keeps the version.
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class MonitorStatus:
    """Where the monitor stands: its connection state, readiness and the last error."""

    state: str
    ready: bool
    error: str | None
    topic: str
    group: str
    started_at_ms: int
    connect_attempts: int
    last_event_ms: int | None
    idle_s: float
    snapshot_interval_s: float


@dataclass(frozen=True)
class PartitionLag:
    """One partition: the monitor's position, its committed offset, the end, and the lag."""

    partition: int
    position: int
    committed: int | None
    end: int
    lag: int


@dataclass(frozen=True)
class LagReading:
    """Lag over the assigned partitions; ``total`` is ``None`` when it could not be read."""

    total: int | None
    error: str | None
    partitions: tuple[PartitionLag, ...]


@dataclass(frozen=True)
class Processing:
    """Events consumed per second since the last snapshot, and the freshness of snapshots
    (event time to published snapshot) over the monitor's life."""

    events_per_s: float
    freshness_p50_s: float | None
    freshness_p99_s: float | None
    freshness_samples: int


@dataclass(frozen=True)
class OpenAlert:
    """An alert the monitor holds open, by its stored id."""

    id: int
    rule: str
    labels: dict[str, str]


@dataclass(frozen=True)
class Snapshot:
    """Everything one published snapshot holds."""

    version: int
    generated_at_ms: int
    generated_at: str
    monitor: MonitorStatus
    totals: Totals
    lag: LagReading
    processing: Processing
    windows: dict[str, WindowSummary]
    alerts_open: tuple[OpenAlert, ...]


def totals_view(totals: Totals) -> Totals:
    """A copy of ``totals`` as the snapshot shows them: rejection reasons in name order."""
    return replace(totals, invalid_by_reason=dict(sorted(totals.invalid_by_reason.items())))


def open_alerts(book: Mapping[AlertKey, int]) -> tuple[OpenAlert, ...]:
    """The open alerts of an alert book, ordered by rule and labels."""
    return tuple(
        OpenAlert(id=alert_id, rule=rule, labels=dict(labels))
        for (rule, labels), alert_id in sorted(book.items())
    )
