"""The validator's fast path gives every record the decision and reason ``validate_event`` gives.

The differential tests reuse the canonical-record generator and the mutations that hold the
ingestion's JVM parser to the contract, and add hypothesis-drawn events and edits; the documented
cases cover every reason.
"""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.streaming.events import (
    EVENT_TYPES,
    FIELD_NAMES,
    FIELDS,
    Event,
    Rejected,
    ValidationRules,
    encode_event,
)
from backend.streaming.fastpath import (
    CanonicalEvent,
    decode_canonical,
    to_event,
    validate_fast,
    validate_many,
)
from backend.streaming.validation import validate_event
from tests.unit.pipeline.test_native import canonical_records, mutate
from tests.unit.streaming.event_cases import DAY_MS, RULES, cases

NOW = 1_700_000_000_000
_VALUES = ("event_id", "user", "item", "type", "ts", "rating", "experiment", "variant")
_VALUES += ("source", "sent_at", "recommendation_id", "model_version")


def outcome(result: Any) -> tuple[str, str | None] | dict[str, Any]:
    """What both validators must agree on: the reason and field, or every value of the event."""
    if isinstance(result, Rejected):
        return (result.reason, result.field)
    return {name: getattr(result, name) for name in _VALUES}


def assert_agree(raw: str | bytes, rules: ValidationRules = RULES) -> None:
    want = validate_event(raw, now=NOW, rules=rules)
    got = validate_fast(raw, NOW, rules)
    assert outcome(got) == outcome(want), raw
    if isinstance(got, Rejected):
        assert got.raw == (raw.encode() if isinstance(raw, str) else raw)


def test_the_struct_has_the_contract_fields_in_contract_order() -> None:
    assert tuple(f.name for f in msgspec.structs.fields(CanonicalEvent)) == FIELD_NAMES
    # The id checks after decoding know these fields; a new id-like field needs its own check.
    assert {s.name for s in FIELDS if s.id_like} == {
        "user", "item", "experiment", "variant", "recommendation_id", "model_version", "source",
    }  # fmt: skip


@pytest.mark.parametrize(("raw", "reason", "field"), cases(NOW))
def test_every_documented_case_gets_the_same_answer(
    raw: str, reason: str | None, field: str | None
) -> None:
    got = validate_fast(raw, NOW, RULES)
    if reason is None:
        assert not isinstance(got, Rejected), got
    else:
        assert isinstance(got, Rejected) and (got.reason, got.field) == (reason, field)
    assert_agree(raw)


def test_every_mutated_record_gets_the_same_answer() -> None:
    rng = random.Random(20261130)
    base = canonical_records(rng, 500)
    records = base + [mutate(rng, rng.choice(base)) for _ in range(6000)]
    for raw in records:
        assert_agree(raw)
    # Canonical records are decided by the fast path, not handed on.
    assert all(decode_canonical(r.encode(), NOW, RULES) is not None for r in base)
    # The mutations reach many reasons, not just not_json.
    judged = validate_many([r.encode() for r in records], NOW, RULES)
    assert len({r.reason for r in judged if isinstance(r, Rejected)}) >= 7


def test_a_batch_gets_each_record_its_own_answer() -> None:
    """Whole batches are checked a column at a time when every record is valid; one record
    off the contract anywhere in a batch must not change any other record's answer."""
    rng = random.Random(7)
    valid = [
        r
        for r in canonical_records(rng, 400)
        if not isinstance(validate_event(r, now=NOW, rules=RULES), Rejected)
    ]
    for _ in range(400):
        batch = [rng.choice(valid) for _ in range(rng.randint(1, 30))]
        if rng.random() < 0.8:
            spot = rng.randrange(len(batch))
            batch[spot] = mutate(rng, batch[spot])
        want = [outcome(validate_event(r, now=NOW, rules=RULES)) for r in batch]
        assert [outcome(g) for g in validate_many(batch, NOW, RULES)] == want, batch
    assert all(isinstance(e, CanonicalEvent) for e in validate_many(valid, NOW, RULES))


_ID = st.text(st.sampled_from("aZ09_-.é /\n"), min_size=0, max_size=70)
_INT = st.one_of(
    st.integers(-(2**64), 2**64),
    st.sampled_from([NOW, NOW + DAY_MS, NOW - 31 * DAY_MS, 0, -1, 10**16, -(10**16)]),
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    etype = draw(st.sampled_from([*EVENT_TYPES, "hover"]))
    event: dict[str, Any] = {
        "schema_version": draw(st.sampled_from([1, 1, 1, 2, True, 1.0, "1"])),
        "event_id": draw(st.one_of(st.text(max_size=130), st.just("e-1"))),
        "user": draw(st.one_of(_ID, st.just("u1"))),
        "item": draw(st.one_of(_ID, st.just("i1"))),
        "type": etype,
        "ts": draw(st.one_of(_INT, st.just(NOW), st.floats(allow_nan=False))),
    }
    for name in ("rating", "experiment", "variant", "recommendation_id", "model_version"):
        if draw(st.booleans()):
            event[name] = (
                draw(st.one_of(st.floats(0, 6), st.integers(0, 6), st.none(), st.booleans()))
                if name == "rating"
                else draw(st.one_of(_ID, st.none(), st.just("A")))
            )
    if draw(st.booleans()):
        event["source"] = draw(st.one_of(_ID, st.just("sim")))
    if draw(st.booleans()):
        event["sent_at"] = draw(_INT)
    return event


@settings(max_examples=400, deadline=None)
@given(events(), st.randoms(use_true_random=False), st.booleans())
def test_drawn_events_and_their_edits_get_the_same_answer(
    event: dict[str, Any], rng: random.Random, reorder: bool
) -> None:
    if reorder:
        keys = list(event)
        rng.shuffle(keys)
        event = {k: event[k] for k in keys}
    raw = json.dumps(event, separators=(",", ":"), ensure_ascii=rng.random() < 0.5)
    assert_agree(raw)
    assert_agree(mutate(rng, raw))


@pytest.mark.parametrize(
    "raw",
    [
        # Two equal keys: msgspec would keep the last one, the contract rejects the record.
        '{"schema_version":1,"event_id":"e","user":"u","user":"v","item":"i","type":"view","ts":1}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"view","ts":1,"ts":2}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"view","ts":1,'
        '"rating":null,"rating":null}',
        # A key spelled with an escape is the same key.
        '{"schema_version":1,"event_id":"e","user":"u","us\\u0065r":"v","item":"i","type":"view",'
        '"ts":1}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"view","ts":1,'
        '"experiment":null}',
        '{"schema_version":1,"event_id":"e\\u0000","user":"u","item":"i","type":"view","ts":1}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"rating","ts":1,'
        '"rating":1e400}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"view","ts":1} ',
    ],
)
def test_records_the_struct_reads_differently_are_left_to_the_exact_path(raw: str) -> None:
    assert decode_canonical(raw.encode(), NOW, RULES) is None or raw.endswith(" ")
    assert_agree(raw)


def test_a_valid_canonical_record_becomes_the_contract_event() -> None:
    event = Event(
        event_id="e-1", user="u1", item="i1", type="rating", ts=NOW, rating=4, source="sim",
        experiment="home", variant="B", sent_at=NOW, recommendation_id="r1", model_version="m.1",
    )  # fmt: skip
    got = decode_canonical(encode_event(event), NOW, RULES)
    assert isinstance(got, CanonicalEvent)
    assert to_event(got) == validate_event(encode_event(event), now=NOW, rules=RULES)


def test_the_clock_and_the_rules_decide_the_time_window() -> None:
    raw = encode_event(Event(event_id="e", user="u", item="i", type="view", ts=NOW))
    late = validate_fast(raw, NOW + 31 * DAY_MS, RULES)
    assert isinstance(late, Rejected) and late.reason == "ts_too_far_past"
    assert not isinstance(validate_fast(raw, NOW + 31 * DAY_MS, ValidationRules()), Rejected)
    early = validate_fast(raw, NOW - DAY_MS, RULES)
    assert isinstance(early, Rejected) and early.reason == "ts_too_far_future"
