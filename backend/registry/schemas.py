"""Model versions and metric records at the API boundary, and the version label a param names."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
VERSION_RULE = "1-64 characters of [A-Za-z0-9._-]"
_VERSION = re.compile(VERSION_PATTERN)


def _check_version(v: str) -> str:
    if not _VERSION.match(v):
        raise ValueError(f"version must be {VERSION_RULE}")
    return v


# A model version as a job param names it (train's new version, simulate's versions to load);
# not to be confused with ``backend.db.tables.ModelVersion``, the registry's row.
VersionLabel = Annotated[str, AfterValidator(_check_version)]


def artifact_name(path: str) -> str:
    """The artifact's directory relative to the models dir (``save_artifact`` writes it as
    ``models_dir/version``): what a response may show instead of the server's absolute path."""
    return Path(path).name


class ModelOut(BaseModel):
    """One registered version, read from its row (``model_validate(row, from_attributes=True)``)."""

    model_config = ConfigDict(from_attributes=True)

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

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        return artifact_name(v)  # the row holds the absolute path; no answer may show it


class ModelPage(BaseModel):
    items: list[ModelOut]


class MetricRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    job_id: int
    model_id: int | None
    subject: str
    fold: int | None = Field(description="the fold, or null for the mean over folds")
    name: str
    value: float | None


class MetricPage(BaseModel):
    items: list[MetricRecordOut]
