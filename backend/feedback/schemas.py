"""The feedback batch a client posts, and the answer that says what was accepted."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class FeedbackIn(BaseModel):
    """A batch of events of the interaction-event contract v1 (``GET /api/v1/events/schema``).

    Each item is checked on its own, so one bad event does not refuse the others: items are
    taken as any JSON value here and judged by the contract's validator.
    """

    events: list[Any] = Field(
        description=(
            "click, view, purchase or rating events; event_id may be left out (the server then "
            "derives one from the event's content, so a retried event is stored once)"
        )
    )


class RejectedEventOut(BaseModel):
    """One refused event: its index in the batch, the contract's reason code, the field at
    fault (null when the whole event is) and a message."""

    index: int
    reason: str
    field: str | None
    message: str


class FeedbackOut(BaseModel):
    """What happened to a batch: ``accepted`` events (their ``event_ids``, in batch order) are
    durably in the event stream; ``rejected`` lists the others."""

    accepted: int
    event_ids: list[str]
    rejected: list[RejectedEventOut]
