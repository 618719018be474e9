"""Answers of the API's own routes (health, the event contract); domains keep theirs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class LiveOut(BaseModel):
    status: Literal["ok"]


class CheckOut(BaseModel):
    """One readiness check; only the fields that apply to it are sent."""

    ok: bool
    ms: float | None = Field(default=None, description="how long the check took")
    error: str | None = Field(default=None, description="why the check failed")
    version: str | None = Field(default=None, description="model: the active version, if any")


class ReadyOut(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, CheckOut] = Field(description="database, broker and the active model")


class EventSchemaOut(BaseModel):
    """A JSON Schema document (draft 2020-12); its other keywords pass through as they are."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)

    schema_: str = Field(alias="$schema")
    id_: str = Field(alias="$id")
    title: str
    type: str
    required: list[str]
    properties: dict[str, Any]
