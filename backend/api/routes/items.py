"""The items catalogue: create or replace, change, read one, list by category."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from backend.api.deps import SessionDep
from backend.api.responses import errors
from backend.catalogue import service
from backend.catalogue.schemas import (
    ITEM_ID_PATTERN,
    ITEM_ID_RULE,
    ItemIn,
    ItemOut,
    ItemPage,
    ItemPatch,
)

router = APIRouter(prefix="/items", tags=["items"])

ItemId = Annotated[str, Path(pattern=ITEM_ID_PATTERN, description=f"item id, {ITEM_ID_RULE}")]


@router.get("", response_model=ItemPage)
def list_items(
    session: SessionDep,
    category: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(pattern=ITEM_ID_PATTERN)] = None,
) -> ItemPage:
    """Catalogue items by id, a page at a time, only those of a category when given."""
    return service.page(session, category, limit, after)


@router.get("/{item_id}", response_model=ItemOut, responses=errors(404, s404="no such item"))
def get_item(item_id: ItemId, session: SessionDep) -> ItemOut:
    """One catalogue item: title, categories, hidden."""
    return service.get(session, item_id)


@router.put("/{item_id}", response_model=ItemOut, responses={201: {"model": ItemOut}})
def put_item(item_id: ItemId, body: ItemIn, response: Response, session: SessionDep) -> ItemOut:
    """Create the item, or replace all its fields; serving picks it up within seconds."""
    out, created = service.put(session, item_id, body)
    if created:
        response.status_code = 201
    return out


@router.patch("/{item_id}", response_model=ItemOut, responses=errors(404, s404="no such item"))
def patch_item(item_id: ItemId, body: ItemPatch, session: SessionDep) -> ItemOut:
    """Change some fields of an item (e.g. hidden=true takes it out of every answer)."""
    return service.patch(session, item_id, body)
