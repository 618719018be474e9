"""Catalogue rules: create or replace an item, change some of its fields, read one or a page,
and the snapshot serving keeps in memory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from backend.catalogue import repository
from backend.catalogue.schemas import ItemIn, ItemOut, ItemPage, ItemPatch
from backend.db.tables import CatalogueItem
from backend.errors import NotFoundError

#: Rows read per query while a category filter scans for a page.
_SCAN = 1000


@dataclass(frozen=True)
class ItemMeta:
    """What serving needs of a catalogue item."""

    title: str | None
    categories: tuple[str, ...]
    hidden: bool


@dataclass(frozen=True)
class CatalogueSnapshot:
    """Every catalogue item, and the version it was read at (count, latest update)."""

    version: tuple[int, datetime | None]
    items: dict[str, ItemMeta]


def _out(row: CatalogueItem) -> ItemOut:
    return ItemOut(
        item=row.item_id,
        title=row.title,
        categories=list(row.categories),
        hidden=row.hidden,
        updated_at=row.updated_at,
    )


def _distinct(categories: list[str]) -> list[str]:
    return list(dict.fromkeys(c.strip() for c in categories if c.strip()))


def put(session: Session, item_id: str, body: ItemIn) -> tuple[ItemOut, bool]:
    """Create item ``item_id`` or replace all its fields; whether it was created."""
    row = repository.get(session, item_id)
    created = row is None
    if row is None:
        row = CatalogueItem(item_id=item_id)
    row.title = body.title
    row.categories = _distinct(body.categories)
    row.hidden = body.hidden
    row.updated_at = datetime.now(UTC)  # also when nothing changed: the write is the news
    repository.add(session, row)
    return _out(row), created


def patch(session: Session, item_id: str, body: ItemPatch) -> ItemOut:
    """Change the fields given in ``body`` (``title: null`` clears the title)."""
    row = repository.get(session, item_id)
    if row is None:
        raise NotFoundError(
            f"item {item_id!r} is not in the catalogue; PUT /api/v1/items/{item_id} creates it"
        )
    given = body.model_fields_set
    if "title" in given:
        row.title = body.title
    if "categories" in given:
        row.categories = _distinct(body.categories or [])
    if "hidden" in given and body.hidden is not None:
        row.hidden = body.hidden
    row.updated_at = datetime.now(UTC)
    repository.add(session, row)
    return _out(row)


def get(session: Session, item_id: str) -> ItemOut:
    """Item ``item_id`` of the catalogue."""
    row = repository.get(session, item_id)
    if row is None:
        raise NotFoundError(f"item {item_id!r} is not in the catalogue")
    return _out(row)


def page(session: Session, category: str | None, limit: int, after: str | None) -> ItemPage:
    """Up to ``limit`` items by id after ``after``, only those of ``category`` when given."""
    found: list[ItemOut] = []
    cursor = after
    # A category is a member of a JSON list, which SQLite and PostgreSQL query differently: the
    # rows are scanned in id order instead, a chunk at a time.
    size = limit if category is None else _SCAN
    while True:
        rows = repository.after(session, cursor, size)
        for i, row in enumerate(rows):
            if category is not None and category not in row.categories:
                continue
            found.append(_out(row))
            if len(found) == limit:
                more = i < len(rows) - 1 or len(rows) == size
                return ItemPage(items=found, next_after=row.item_id if more else None)
        if len(rows) < size:
            return ItemPage(items=found, next_after=None)
        cursor = rows[-1].item_id


def snapshot(
    session: Session, known: tuple[int, datetime | None] | None
) -> CatalogueSnapshot | None:
    """The whole catalogue, or None when its version is still ``known`` (nothing changed)."""
    version = repository.version(session)
    if version == known:
        return None
    items = {
        row.item_id: ItemMeta(row.title, tuple(row.categories), row.hidden)
        for row in repository.every(session)
    }
    return CatalogueSnapshot(version=version, items=items)
