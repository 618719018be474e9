"""The interaction-event contract."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.streaming.events import json_schema

router = APIRouter(prefix="/events", tags=["events"])


@router.get("/schema")
def event_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of interaction events, version 1."""
    return json_schema()
