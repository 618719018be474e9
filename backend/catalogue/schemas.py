"""Catalogue items at the API boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: Item ids are the event contract's ids, the ones models are trained on.
ITEM_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ITEM_ID_RULE = "1-64 characters of [A-Za-z0-9_-]"
# A category is any short text without a comma: the serving routes split category= on commas.
Category = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^,\x00-\x1f]+$")]
Title = Annotated[str, Field(min_length=1, max_length=500)]


class ItemIn(BaseModel):
    """The whole item (PUT): what is not given takes its default."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    categories: list[Category] = Field(default_factory=list, max_length=50)
    hidden: bool = Field(default=False, description="a hidden item is never served")


class ItemPatch(BaseModel):
    """The fields to change (PATCH); the others keep their value."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    categories: list[Category] | None = Field(default=None, max_length=50)
    hidden: bool | None = None


class ItemOut(BaseModel):
    item: str
    title: str | None
    categories: list[str]
    hidden: bool
    updated_at: datetime


class ItemPage(BaseModel):
    items: list[ItemOut] = Field(description="by item id")
    next_after: str | None = Field(description="pass as after= for the next page; null: last")
