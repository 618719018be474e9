"""Model versions and metric records at the API boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ModelOut(BaseModel):
    id: int
    version: str
    algorithm: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    fingerprint: str
    n_users: int
    n_items: int
    n_ratings: int
    job_id: int | None
    active: bool
    created_at: datetime
    activated_at: datetime | None
    path: str = Field(description="the artifact's directory, relative to the models dir")


class ModelPage(BaseModel):
    items: list[ModelOut]


class MetricRecordOut(BaseModel):
    job_id: int
    model_id: int | None
    subject: str
    fold: int | None = Field(description="the fold, or null for the mean over folds")
    name: str
    value: float | None


class MetricPage(BaseModel):
    items: list[MetricRecordOut]
