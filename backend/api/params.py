"""Bounded path and query parameters shared by the routes.

The tables' id columns are SQL INTEGER: 32-bit on PostgreSQL, 64-bit on SQLite. A number beyond
them must be refused as input (422) before it reaches a query, where it would overflow the
driver (a 500), so every integer a request can name is bounded to the 32-bit range.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

DB_INT_MAX = 2**31 - 1
"""The largest value of a SQL INTEGER column on every supported database."""

IdPath = Annotated[int, Path(ge=1, le=DB_INT_MAX, description=f"a numeric id, 1-{DB_INT_MAX}")]
IdQuery = Annotated[
    int | None, Query(ge=1, le=DB_INT_MAX, description=f"a numeric id, 1-{DB_INT_MAX}")
]


def in_db_range(value: int) -> bool:
    """Whether ``value`` fits an id column (1 .. 2**31-1)."""
    return 1 <= value <= DB_INT_MAX
