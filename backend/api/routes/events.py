"""The interaction-event contract."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.schemas import EventSchemaOut
from backend.streaming.events import json_schema

router = APIRouter(prefix="/events", tags=["events"])


@router.get("/schema", response_model=EventSchemaOut)
def event_schema() -> EventSchemaOut:
    """The JSON Schema (draft 2020-12) of interaction events, version 1."""
    return EventSchemaOut.model_validate(json_schema())
