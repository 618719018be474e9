"""Alerts in SQL (the ``alerts`` table): open, resolve, list. Every alert is logged too."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.session import session_scope
from backend.db.tables import Alert
from backend.monitoring.alerts import AlertKey, Condition, alert_key

log = logging.getLogger(__name__)


class AlertStore:
    """Writes alert transitions; each call is its own short transaction (it owns its session)."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url

    def load_open(self) -> dict[AlertKey, int]:
        """Open alerts (not resolved) by key, so a restarted monitor does not open them again."""
        with session_scope(self.url) as s:
            rows = s.scalars(select(Alert).where(Alert.resolved_at.is_(None))).all()
            return {alert_key(r.rule, r.labels or {}): r.id for r in rows}

    def fire(self, cond: Condition, when: datetime | None = None) -> int:
        """Store a new open alert and log it; returns its id."""
        with session_scope(self.url) as s:
            row = Alert(
                rule=cond.rule,
                severity=cond.severity,
                message=cond.message,
                value=cond.value,
                threshold=cond.threshold,
                labels=dict(cond.labels),
                fired_at=when or datetime.now(UTC),
            )
            s.add(row)
            s.flush()
            alert_id = row.id
        log.warning("alert %d fired: [%s] %s %s", alert_id, cond.rule, cond.labels, cond.message)
        return alert_id

    def resolve(self, alert_id: int, when: datetime | None = None) -> None:
        """Mark an open alert resolved (a no-op when it is already resolved or gone)."""
        with session_scope(self.url) as s:
            row = s.get(Alert, alert_id)
            if row is not None and row.resolved_at is None:
                row.resolved_at = when or datetime.now(UTC)
                log.info("alert %d resolved: [%s] %s", alert_id, row.rule, row.labels)


def recent_alerts(
    session: Session, *, limit: int, before_id: int | None = None, open_only: bool = False
) -> Sequence[Alert]:
    """Alerts newest first (by id), at most ``limit``, optionally only those before an id."""
    q = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(Alert.id < before_id)
    if open_only:
        q = q.where(Alert.resolved_at.is_(None))
    return session.scalars(q).all()
