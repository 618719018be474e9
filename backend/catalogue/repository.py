"""All SQL for the items catalogue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.db.tables import CatalogueItem


def get(session: Session, item_id: str) -> CatalogueItem | None:
    return session.get(CatalogueItem, item_id)


def add(session: Session, row: CatalogueItem) -> None:
    session.add(row)
    session.flush()


def after(session: Session, item_id: str | None, limit: int) -> Sequence[CatalogueItem]:
    """Up to ``limit`` items with ids above ``item_id`` (all ids when None), by id."""
    stmt = select(CatalogueItem).order_by(CatalogueItem.item_id).limit(limit)
    if item_id is not None:
        stmt = stmt.where(CatalogueItem.item_id > item_id)
    return session.scalars(stmt).all()


def version(session: Session) -> tuple[int, datetime | None]:
    """(number of items, latest update): changes whenever an item is added or updated."""
    n, latest = session.execute(
        select(func.count(CatalogueItem.item_id), func.max(CatalogueItem.updated_at))
    ).one()
    return int(n), latest


def every(session: Session) -> Sequence[CatalogueItem]:
    return session.scalars(select(CatalogueItem)).all()
