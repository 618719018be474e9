"""Job resources at the API boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobCreate(BaseModel):
    kind: str = Field(description="job kind, e.g. echo, train, validate, ingest, abtest, report")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters of the kind")


class StageOut(BaseModel):
    name: str
    attempt: int
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    rows_in: int | None
    rows_out: int | None
    extra: dict[str, Any]


class JobOut(BaseModel):
    id: int
    kind: str
    params: dict[str, Any]
    state: JobState
    progress: float
    message: str | None
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    cancel_requested: bool
    celery_task_id: str | None
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stages: list[StageOut] = []


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class JobKindOut(BaseModel):
    name: str
    description: str
    params_schema: dict[str, Any]
