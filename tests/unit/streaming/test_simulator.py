from __future__ import annotations

import itertools
from collections import Counter

import pandas as pd
import pytest

from backend.streaming.events import Event, Rejected, validate_event
from backend.streaming.simulator import (
    MALFORMED_KINDS,
    TrafficSpec,
    assign_variant,
    malformed_event,
    replay_ratings,
    simulate_traffic,
)


def decoded(spec: TrafficSpec, n: int) -> list[Event | Rejected]:
    return [validate_event(e.value) for e in itertools.islice(simulate_traffic(spec), n)]


def test_same_seed_same_traffic() -> None:
    spec = TrafficSpec(seed=7, run_id="r", start_ms=1_700_000_000_000)
    first = [e.value for e in itertools.islice(simulate_traffic(spec), 500)]
    again = [e.value for e in itertools.islice(simulate_traffic(spec), 500)]
    other = [
        e.value
        for e in itertools.islice(
            simulate_traffic(TrafficSpec(seed=8, run_id="r", start_ms=1_700_000_000_000)), 500
        )
    ]
    assert first == again
    assert first != other


def test_events_are_valid_keyed_by_user_with_unique_ids() -> None:
    spec = TrafficSpec(seed=1, users=50)
    out = list(itertools.islice(simulate_traffic(spec), 2000))
    events = [validate_event(e.value) for e in out]
    assert all(isinstance(e, Event) for e in events)
    valid = [e for e in events if isinstance(e, Event)]
    assert len({e.event_id for e in valid}) == len(valid)
    assert all(o.key == e.user for o, e in zip(out, valid, strict=True))


def test_variants_follow_the_hash_assignment_and_ctr() -> None:
    spec = TrafficSpec(seed=3, users=2000, ctr={"A": 0.05, "B": 0.20})
    events = [e for e in decoded(spec, 60_000) if isinstance(e, Event)]
    for e in events:
        assert e.variant == assign_variant("exp1", e.user, ["A", "B"])
    counts = Counter((e.variant, e.type) for e in events)
    for variant, rate in (("A", 0.05), ("B", 0.20)):
        ctr = counts[(variant, "click")] / counts[(variant, "impression")]
        assert ctr == pytest.approx(rate, abs=0.015)
    share_a = counts[("A", "impression")] / (
        counts[("A", "impression")] + counts[("B", "impression")]
    )
    assert share_a == pytest.approx(0.5, abs=0.05)


def test_assign_variant_is_stable_and_order_free() -> None:
    assert assign_variant("exp", "u1", ["A", "B"]) == assign_variant("exp", "u1", ["B", "A"])
    with pytest.raises(ValueError):
        assign_variant("exp", "u1", [])


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_events_get_their_reason(kind: str) -> None:
    out = validate_event(malformed_event(kind).value)
    assert isinstance(out, Rejected) and out.reason == kind


def test_injected_fractions() -> None:
    spec = TrafficSpec(seed=5, malformed_fraction=0.1, duplicate_fraction=0.05)
    out = list(itertools.islice(simulate_traffic(spec), 20_000))
    bad = [o for o in out if o.expected_reason]
    dups = [o for o in out if o.duplicate]
    assert len(bad) / len(out) == pytest.approx(0.1 * 0.95, abs=0.02)
    assert len(dups) / len(out) == pytest.approx(0.05 * 0.9, abs=0.02)
    assert {o.expected_reason for o in bad} == set(MALFORMED_KINDS)
    for o in bad[:50]:
        got = validate_event(o.value)
        assert isinstance(got, Rejected) and got.reason == o.expected_reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ctr": {"A": 1.5}},
        {"ctr": {}},
        {"experiment": None, "ctr": {"A": 0.1, "B": 0.1}},
        {"malformed_fraction": 1.0},
        {"malformed_kinds": ("nonsense",)},
        {"users": 0},
    ],
)
def test_spec_rejects_bad_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TrafficSpec(**kwargs)  # type: ignore[arg-type]


def test_replay_ratings_makes_rating_events_with_stable_ids() -> None:
    frame = pd.DataFrame(
        {"user": [1, 2], "item": [10, 20], "rating": [4, 2.5], "timestamp": [881250949, 891717742]}
    )
    out = list(replay_ratings(frame))
    events = [validate_event(o.value) for o in out]
    assert all(isinstance(e, Event) for e in events)
    first = events[0]
    assert isinstance(first, Event)
    assert (first.user, first.item, first.rating, first.ts, first.type) == (
        "1",
        "10",
        4.0,
        881250949000,
        "rating",
    )
    assert first.event_id == "r-1-10-881250949"
    assert [o.value for o in replay_ratings(frame)] == [o.value for o in out]


def test_replay_ratings_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        list(replay_ratings(pd.DataFrame({"user": [1], "item": [1], "rating": [1]})))
