"""Bounded path and query parameters shared by the routes.

The tables' id columns are SQL INTEGER (``backend.db.types.DB_INT_MAX``). A number beyond them
must be refused as input (422) before it reaches a query, where it would overflow the driver (a
500), so every integer a request can name is bounded to the 32-bit range.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from backend.db.types import DB_INT_MAX, in_db_range

__all__ = ["DB_INT_MAX", "IdPath", "IdQuery", "in_db_range"]

IdPath = Annotated[int, Path(ge=1, le=DB_INT_MAX, description=f"a numeric id, 1-{DB_INT_MAX}")]
IdQuery = Annotated[
    int | None, Query(ge=1, le=DB_INT_MAX, description=f"a numeric id, 1-{DB_INT_MAX}")
]
