"""The interaction-event contract."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from backend.streaming.events import json_schema

router = APIRouter(prefix="/events", tags=["events"])


class EventSchemaOut(BaseModel):
    """A JSON Schema document (draft 2020-12); its other keywords pass through as they are."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)

    schema_: str = Field(alias="$schema")
    id_: str = Field(alias="$id")
    title: str
    type: str
    required: list[str]
    properties: dict[str, Any]


@router.get("/schema", response_model=EventSchemaOut)
def event_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of interaction events, version 1."""
    return json_schema()
