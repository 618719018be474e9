"""Where the monitor publishes its latest snapshot, so that every API worker can read it.

Redis when a Redis URL is configured (one key, written atomically with a TTL-free ``SET``), else
the SQL table ``monitor_snapshots`` (one row, key ``latest``), else process memory (tests, and a
monitor running inside the reading process). A snapshot is a JSON object; readers judge its
freshness from its ``generated_at_ms``.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import orjson
from sqlalchemy import select

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.db.tables import MonitorSnapshot

SNAPSHOT_KEY = "latest"
REDIS_KEY = "recflow:monitor:snapshot"


class SnapshotStore(Protocol):
    """Latest-snapshot storage: ``put`` replaces it, ``get`` returns it or ``None``."""

    def put(self, snapshot: dict[str, Any]) -> None: ...

    def get(self) -> dict[str, Any] | None: ...


class MemorySnapshotStore:
    """In-process store (thread-safe), for tests and a monitor running inside the API process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None

    def put(self, snapshot: dict[str, Any]) -> None:
        with self._lock:
            self._value = snapshot

    def get(self) -> dict[str, Any] | None:
        with self._lock:
            return self._value


class RedisSnapshotStore:
    """One Redis string holding the snapshot as JSON."""

    def __init__(self, url: str, key: str = REDIS_KEY) -> None:
        import redis

        self.key = key
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def put(self, snapshot: dict[str, Any]) -> None:
        self._client.set(self.key, orjson.dumps(snapshot))

    def get(self) -> dict[str, Any] | None:
        raw = self._client.get(self.key)
        if raw is None:
            return None
        value: dict[str, Any] = orjson.loads(raw)  # type: ignore[arg-type]
        return value


class SqlSnapshotStore:
    """One row of ``monitor_snapshots`` (embedded mode, where there is no Redis)."""

    def __init__(self, database_url: str, key: str = SNAPSHOT_KEY) -> None:
        self.url = database_url
        self.key = key

    def put(self, snapshot: dict[str, Any]) -> None:
        with session_scope(self.url, durable=False) as s:
            row = s.get(MonitorSnapshot, self.key)
            if row is None:
                s.add(MonitorSnapshot(key=self.key, payload=snapshot, updated_at=utcnow()))
            else:
                row.payload = snapshot
                row.updated_at = utcnow()

    def get(self) -> dict[str, Any] | None:
        with session_scope(self.url) as s:
            payload = s.scalar(
                select(MonitorSnapshot.payload).where(MonitorSnapshot.key == self.key)
            )
            return dict(payload) if payload is not None else None


def store_for(settings: Settings) -> SnapshotStore:
    """Redis when ``RECFLOW_REDIS_URL`` is set, else the SQL table of the configured database."""
    if settings.redis_url:
        return RedisSnapshotStore(settings.redis_url)
    return SqlSnapshotStore(settings.sqlalchemy_url)
