"""What the API reads of the live monitor: its latest snapshot judged for freshness, one window's
summary, the monitor's readiness, and the stored alerts.

The snapshot is written by the monitor process (``consumer.Monitor.snapshot``) into a
``SnapshotStore``; these functions read it and raise domain errors (never HTTP ones).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from backend.errors import InvalidInputError, UnavailableError
from backend.monitoring.alert_store import recent_alerts
from backend.monitoring.schemas import AlertOut, AlertPage, StatusOut, SummaryOut
from backend.monitoring.snapshots import SnapshotStore
from backend.streaming.events import now_ms

log = logging.getLogger(__name__)

NO_SNAPSHOT = (
    "no monitor snapshot yet: start the monitor with `recflow monitor` "
    "(it needs RECFLOW_KAFKA_BOOTSTRAP_SERVERS), then retry"
)


def freshness(snap: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """How old a snapshot is and whether it is stale (older than 5 snapshot intervals, >= 5 s)."""
    age_s = max(0.0, (at_ms - int(snap["generated_at_ms"])) / 1000)
    interval = float(snap["monitor"].get("snapshot_interval_s", 1.0))
    stale = age_s > max(5.0, 5 * interval)
    return {"age_s": round(age_s, 3), "stale": stale}


def latest(store: SnapshotStore) -> dict[str, Any] | None:
    """The latest snapshot, or None before the monitor wrote one.

    A store that cannot be read (Redis or the database down) is an ``UnavailableError``.
    """
    try:
        return store.get()
    except Exception as exc:
        log.warning("cannot read the monitor snapshot store: %s", exc)
        raise UnavailableError(
            f"cannot read the monitor snapshot store ({type(exc).__name__}); "
            "check RECFLOW_REDIS_URL or the database"
        ) from exc


def summary(snap: dict[str, Any] | None, window: str, at_ms: int) -> SummaryOut:
    """One window's figures with the monitor's state, totals, lag and open alerts."""
    if snap is None:
        raise UnavailableError(NO_SNAPSHOT, detail={"status": "no_snapshot"})
    win = snap["windows"].get(window)
    if win is None:
        raise InvalidInputError(
            f"the monitor does not compute the {window} window; it has {', '.join(snap['windows'])}"
        )
    return SummaryOut.model_validate(
        {
            **win,
            **freshness(snap, at_ms),
            "generated_at": snap["generated_at"],
            "monitor": snap["monitor"],
            "totals": snap["totals"],
            "lag": snap["lag"],
            "processing": snap["processing"],
            "alerts_open": snap["alerts_open"],
        }
    )


def status(store: SnapshotStore, clock: Callable[[], int] = now_ms) -> StatusOut:
    """Ready when the snapshot is fresh and the monitor consumes; otherwise ``reason`` says why.

    Only the fields that apply are set: without a snapshot, ``ready`` and ``reason`` alone.
    """
    try:
        snap = latest(store)
    except UnavailableError as exc:  # the store is down: the same answer, with the reason
        return StatusOut(ready=False, reason=exc.message)
    if snap is None:
        return StatusOut(ready=False, reason=NO_SNAPSHOT)
    fresh = freshness(snap, clock())
    mon = snap["monitor"]
    if fresh["stale"]:
        reason: str | None = (
            f"the monitor's last snapshot is {fresh['age_s']:.0f} s old: it is not running"
        )
    elif not mon.get("ready"):
        reason = f"monitor state {mon['state']}: {mon.get('error') or 'starting'}"
    else:
        reason = None
    return StatusOut.model_validate(
        {"ready": reason is None, "reason": reason, **fresh, "monitor": mon}
    )


def alert_page(
    session: Session, *, limit: int, before_id: int | None = None, open_only: bool = False
) -> AlertPage:
    """Alerts newest first; ``next_before_id`` continues the listing when there are more."""
    rows = recent_alerts(session, limit=limit + 1, before_id=before_id, open_only=open_only)
    items = [
        AlertOut(
            id=row.id,
            rule=row.rule,
            severity=row.severity,
            message=row.message,
            value=row.value,
            threshold=row.threshold,
            labels=row.labels or {},
            fired_at=row.fired_at.isoformat(),
            resolved_at=row.resolved_at.isoformat() if row.resolved_at else None,
            open=row.resolved_at is None,
        )
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    return AlertPage(items=items, next_before_id=items[-1].id if more else None)
