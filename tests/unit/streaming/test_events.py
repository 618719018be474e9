"""The event contract: its wire form, its limits and its JSON Schema."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from backend.registry.schemas import VERSION_PATTERN
from backend.streaming.events import (
    EVENT_TYPES,
    FIELD_NAMES,
    MODEL_VERSION_PATTERN,
    REASONS,
    Event,
    EventType,
    Reason,
    ValidationRules,
    encode_event,
    field_spec,
    json_schema,
)
from backend.streaming.validation import validate_event

NOW = 1_700_000_000_000


def test_valid_event_round_trips_through_encode() -> None:
    event = Event(
        event_id="e-9",
        user="u_1",
        item="i-2",
        type="rating",
        ts=NOW,
        rating=4.0,
        experiment="home",
        variant="A",
        source="replay",
        recommendation_id="rec-1",
        model_version="als.v2",
    )
    assert validate_event(encode_event(event), now=NOW) == event
    assert event.time == datetime.fromtimestamp(NOW / 1000, tz=UTC)
    assert list(json.loads(encode_event(event))) == [
        n for n in FIELD_NAMES if getattr(event, n) is not None
    ]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_bytes": 10}, {"scale": (5.0, 1.0)}, {"max_age": timedelta(0)}],
)
def test_rules_reject_unusable_limits(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ValidationRules(**kwargs)  # type: ignore[arg-type]


def test_json_schema_is_derived_from_the_fields() -> None:
    schema = json_schema(ValidationRules(scale=(0.5, 5.0)))
    assert set(schema["properties"]) == set(FIELD_NAMES)
    assert schema["required"] == ["schema_version", "event_id", "user", "item", "type", "ts"]
    assert schema["properties"]["type"]["enum"] == list(EVENT_TYPES)
    assert schema["then"]["properties"]["rating"] == {
        "type": "number",
        "minimum": 0.5,
        "maximum": 5.0,
    }
    assert schema["properties"]["user"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"
    assert schema["properties"]["recommendation_id"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"
    assert schema["properties"]["model_version"]["pattern"] == MODEL_VERSION_PATTERN
    assert schema["properties"]["model_version"]["type"] == ["string", "null"]
    assert "model_version" not in schema["required"]
    json.dumps(schema)  # JSON-ready for the API


def test_the_wire_form_is_compact_json_in_contract_order_without_absent_fields() -> None:
    click = Event(event_id="e-1", user="u1", item="i1", type="click", ts=NOW, source="sim")
    assert encode_event(click) == (
        b'{"schema_version":1,"event_id":"e-1","user":"u1","item":"i1","type":"click",'
        b'"ts":1700000000000,"source":"sim"}'
    )
    # A mapping is written as given (the simulator's malformed records).
    assert encode_event({"b": 1, "a": None}) == b'{"b":1,"a":null}'


def test_reasons_and_event_types_have_one_source() -> None:
    assert get_args(Reason) == REASONS and REASONS[0] == "oversized"
    assert get_args(EventType) == EVENT_TYPES and "rating" in EVENT_TYPES


def test_the_model_version_rule_is_the_registry_version_label() -> None:
    # The contract copies the registry's pattern (it imports no other layer); they must agree.
    assert MODEL_VERSION_PATTERN == VERSION_PATTERN
    assert f"^{field_spec('model_version').id_regex()}$" == VERSION_PATTERN
    labels = ["v1", "als-v3.1_b", "9" * 64, "9" * 65, ".v", "-v", "_v", "v 1", "", "v/1", "é"]
    for label in labels:
        registry_ok = re.match(VERSION_PATTERN, label) is not None and "\n" not in label
        raw = encode_event(
            Event(event_id="e", user="u", item="i", type="click", ts=NOW, model_version=label)
        )
        assert isinstance(validate_event(raw, now=NOW), Event) == registry_ok, label


def test_events_without_the_new_fields_stay_valid() -> None:
    old = b'{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"click","ts":1}'
    event = validate_event(old, now=NOW)
    assert isinstance(event, Event)
    assert event.recommendation_id is None and event.model_version is None
