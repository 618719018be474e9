"""Column types that behave the same on PostgreSQL and SQLite, and the range of their ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

DB_INT_MAX = 2**31 - 1
"""The largest value of a SQL INTEGER column (the tables' ids) on every supported database.

32-bit on PostgreSQL, 64-bit on SQLite: a number beyond it must be refused as input before it
reaches a query, where it would overflow the driver."""


def in_db_range(value: int) -> bool:
    """Whether ``value`` fits an id column (1 .. 2**31-1)."""
    return 1 <= value <= DB_INT_MAX


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes; SQLite stores naive values, so the zone is put back."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
