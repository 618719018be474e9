"""The feedback rules: per-event reasons, refused impressions, derived ids, batch limits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from backend.errors import InvalidInputError, UnavailableError
from backend.feedback.service import (
    BatchTooLargeError,
    FeedbackPublisher,
    check_batch,
    derived_event_id,
)
from backend.streaming.events import DEFAULT_RULES
from backend.streaming.producer import OutgoingEvent

NOW = 1_700_000_000_000


def click(**over: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1,
        "user": "u1",
        "item": "i1",
        "type": "click",
        "ts": NOW - 1000,
        "recommendation_id": "rec-1",
        "model_version": "als-v2",
    }
    event.update(over)
    return {k: v for k, v in event.items() if v is not ...}


def check(items: list[Any], max_batch: int = 10) -> Any:
    return check_batch(items, rules=DEFAULT_RULES, max_batch=max_batch, now=NOW)


def test_every_feedback_type_is_accepted_with_its_fields() -> None:
    items = [
        click(event_id="c-1"),
        click(type="view"),
        click(type="purchase"),
        click(type="rating", rating=4.0),
    ]
    got = check(items)
    assert got.rejected == ()
    assert [e.type for e in got.accepted] == ["click", "view", "purchase", "rating"]
    assert got.accepted[0].event_id == "c-1"
    assert {(e.recommendation_id, e.model_version, e.source) for e in got.accepted} == {
        ("rec-1", "als-v2", "feedback")
    }


def test_mixed_batch_gives_each_rejected_index_its_contract_reason() -> None:
    items = [
        click(),
        click(user="has space"),
        "not an object",
        click(type="rating"),
        click(recommendation_id="r/1"),
        click(model_version=".v"),
        click(ts=...),
        click(type="view", rating=3),
        click(rating=float("nan")),
        click(item="i2"),
    ]
    got = check(items)
    assert len(got.accepted) == 2
    assert [(r.index, r.reason, r.field) for r in got.rejected] == [
        (1, "bad_id", "user"),
        (2, "not_json", None),
        (3, "missing_field", "rating"),
        (4, "bad_id", "recommendation_id"),
        (5, "bad_id", "model_version"),
        (6, "missing_field", "ts"),
        (7, "rating_not_allowed", "rating"),
        (8, "not_json", None),
    ]
    assert all(r.message for r in got.rejected)


def test_impressions_are_refused_as_feedback() -> None:
    got = check([click(type="impression"), click()])
    assert len(got.accepted) == 1
    (refused,) = got.rejected
    assert (refused.index, refused.reason, refused.field) == (0, "type_not_allowed", "type")
    assert "serving" in refused.message


def test_a_missing_event_id_is_derived_from_the_content() -> None:
    first = check([click(), click(item="i2")]).accepted
    again = check([click(), click(item="i2")]).accepted
    # A retried batch gets the same ids (so the ingestion stores it once); other content another.
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert first[0].event_id != first[1].event_id
    assert first[0].event_id.startswith("fb-") and len(first[0].event_id) == 35
    assert derived_event_id({"a": 1, "event_id": "x"}) == derived_event_id({"a": 1})


def test_batch_limits() -> None:
    with pytest.raises(BatchTooLargeError) as too_large:
        check([click()] * 11, max_batch=10)
    assert too_large.value.status_code == 413 and "at most 10" in too_large.value.message
    with pytest.raises(InvalidInputError, match="at least one"):
        check([])
    assert len(check([click(event_id=f"e{i}") for i in range(10)]).accepted) == 10


class FailingSink:
    def __init__(self, fail_start: bool = False, hang: bool = False) -> None:
        self.fail_start = fail_start
        self.hang = hang
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        if self.fail_start:
            raise OSError("broker down")

    async def send(self, batch: Sequence[OutgoingEvent]) -> None:
        if self.hang:
            await asyncio.sleep(10)
        raise OSError("disk full")

    async def stop(self) -> None:
        return None

    def describe(self) -> str:
        return "test://sink"


def test_a_sink_that_cannot_start_or_send_is_a_503() -> None:
    events = check([click()]).accepted

    async def run() -> None:
        down = FailingSink(fail_start=True)
        publisher = FeedbackPublisher(down, timeout_s=1.0, serialize=True)
        await publisher.start()  # logged, not raised: the API still starts
        with pytest.raises(UnavailableError, match="no event was accepted"):
            await publisher.publish(events)
        assert down.starts == 2  # the request tried again
        for sink in (FailingSink(), FailingSink(hang=True)):
            publisher = FeedbackPublisher(sink, timeout_s=0.2, serialize=False)
            with pytest.raises(UnavailableError, match="did not take the batch"):
                await publisher.publish(events)

    asyncio.run(run())
