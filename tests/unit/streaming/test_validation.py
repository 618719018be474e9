"""The Python validator: every documented reason, in the documented order of checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.streaming.events import (
    EPOCH_MS_LIMIT,
    REASONS,
    Event,
    Rejected,
    ValidationRules,
    json_schema,
)
from backend.streaming.validation import validate_event
from tests.unit.streaming.event_cases import RULES, cases, record

NOW = 1_700_000_000_000


@pytest.mark.parametrize(("raw", "reason", "field"), cases(NOW))
def test_validate_event_gives_the_documented_reason(
    raw: str, reason: str | None, field: str | None
) -> None:
    out = validate_event(raw, now=NOW, rules=RULES)
    if reason is None:
        assert isinstance(out, Event), out
    else:
        assert isinstance(out, Rejected)
        assert (out.reason, out.field) == (reason, field)
        assert out.raw == raw.encode("utf-8")
        assert out.message


def test_every_reason_is_covered_by_the_cases() -> None:
    assert {reason for _, reason, _ in cases(NOW) if reason} == set(REASONS)


def test_bytes_and_str_are_the_same_record() -> None:
    raw = record(NOW)
    assert validate_event(raw, now=NOW) == validate_event(raw.encode(), now=NOW)


def test_invalid_utf8_is_not_json() -> None:
    out = validate_event(b'{"user": "\xff"}', now=NOW)
    assert isinstance(out, Rejected) and out.reason == "not_json"


def test_now_accepts_an_aware_datetime_only() -> None:
    aware = datetime.fromtimestamp(NOW / 1000, tz=UTC)
    assert isinstance(validate_event(record(NOW), now=aware), Event)
    with pytest.raises(ValueError, match="aware"):
        validate_event(record(NOW), now=datetime(2024, 1, 1))


def test_future_skew_boundary_is_inclusive() -> None:
    rules = ValidationRules(max_future_skew=timedelta(seconds=10))
    assert isinstance(validate_event(record(NOW, ts=NOW + 10_000), now=NOW, rules=rules), Event)
    late = validate_event(record(NOW, ts=NOW + 10_001), now=NOW, rules=rules)
    assert isinstance(late, Rejected) and late.reason == "ts_too_far_future"


def test_scale_is_configurable() -> None:
    rules = ValidationRules(scale=(0.5, 10.0))
    assert isinstance(
        validate_event(record(NOW, type="rating", rating=9), now=NOW, rules=rules), Event
    )
    assert isinstance(
        validate_event(record(NOW, type="rating", rating=0.5), now=NOW, rules=rules), Event
    )


@pytest.mark.parametrize(
    ("sent_at", "reason"),
    [
        (EPOCH_MS_LIMIT, None),
        (-EPOCH_MS_LIMIT, None),
        (EPOCH_MS_LIMIT + 1, "ts_too_far_future"),
        (-EPOCH_MS_LIMIT - 1, "ts_too_far_past"),
    ],
)
def test_sent_at_must_fit_a_lake_timestamp(sent_at: int, reason: str | None) -> None:
    now = 1_700_000_000_000
    result = validate_event(record(now, sent_at=sent_at), now=now, rules=RULES)
    got = (result.reason, result.field) if isinstance(result, Rejected) else (None, None)
    assert got == ((reason, "sent_at") if reason else (None, None))
    bounds = json_schema()["properties"]["sent_at"]
    assert (bounds["minimum"], bounds["maximum"]) == (-EPOCH_MS_LIMIT, EPOCH_MS_LIMIT)
