"""The filters and settings of a pipeline performance report, shared by the job, API and CLI."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from backend.errors import InvalidInputError
from backend.jobs.kind import installed

MAX_LAST = 10_000
DEFAULT_LAST = 1_000
STATES = ("succeeded", "failed", "cancelled", "any")

ReportState = Literal["succeeded", "failed", "cancelled", "any"]

DATE_HINT = "an ISO 8601 date or datetime, e.g. 2026-01-31 or 2026-01-31T12:00:00Z"


def parse_when(value: Any) -> datetime | None:
    """An ISO 8601 date or datetime as an aware UTC datetime (naive values are taken as UTC).

    A bare date means midnight UTC at the start of that day.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"must be {DATE_HINT}; got {value!r}") from None
    else:
        raise ValueError(f"must be {DATE_HINT}; got {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


class PipelineReportParams(BaseModel):
    """Which runs a report covers, and how it flags regressions.

    A run is one job. Only the stages of the job's latest attempt count
    (``job_stages.attempt == jobs.attempts``), and only stages that finished (a duration).
    """

    model_config = ConfigDict(extra="forbid")

    kind: str | None = Field(default=None, description="only this job kind (default: every kind)")
    since: datetime | None = Field(
        default=None, description="runs started at or after this time (ISO 8601, UTC if naive)"
    )
    until: datetime | None = Field(
        default=None, description="runs started before this time (ISO 8601, UTC if naive)"
    )
    last: int = Field(
        default=DEFAULT_LAST,
        ge=1,
        le=MAX_LAST,
        description=f"the N most recent matching runs of each kind (1-{MAX_LAST})",
    )
    state: ReportState = Field(
        default="succeeded", description="runs that ended in this state; 'any' = every ended run"
    )
    recent: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="regression check: the last M runs of a stage against the runs before",
    )
    factor: float = Field(
        default=1.5,
        gt=1.0,
        le=100.0,
        description="flag a stage when its recent median exceeds the trailing one by this factor",
    )
    slowest: int = Field(default=10, ge=0, le=100, description="how many slowest runs to list")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _when(cls, v: Any) -> datetime | None:
        return parse_when(v)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str | None) -> str | None:
        if v is None:
            return None
        catalog = installed()
        if v not in catalog:
            raise ValueError(f"unknown job kind {v!r}; known kinds: {', '.join(catalog.names())}")
        return v

    @field_validator("until")
    @classmethod
    def _range(cls, v: datetime | None, info: ValidationInfo) -> datetime | None:
        # A field validator (not a model one), so the error names the field to fix.
        since = info.data.get("since")
        if v is not None and since is not None and since >= v:
            raise ValueError(
                f"since ({since.isoformat()}) must be before until ({v.isoformat()}); "
                "swap them or widen the range"
            )
        return v

    def filters(self) -> dict[str, Any]:
        """The params as JSON-ready values (what a stored report records)."""
        return self.model_dump(mode="json")


def describe_errors(exc: ValidationError) -> str:
    """One line per problem, e.g. ``last: Input should be less than or equal to 10000``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "params"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def parse_params(raw: dict[str, Any]) -> PipelineReportParams:
    """Validate report params, raising a 422 ``InvalidInputError`` that says what to fix."""
    try:
        return PipelineReportParams.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInputError(
            describe_errors(exc),
            detail=[
                {"loc": list(e["loc"]), "msg": str(e["msg"]), "type": e["type"]}
                for e in exc.errors()
            ],
        ) from None
