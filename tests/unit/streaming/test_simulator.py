from __future__ import annotations

import itertools
import re
from collections import Counter

import pandas as pd
import pytest

from backend.streaming import simulator
from backend.streaming.assignment import assign_variant
from backend.streaming.events import Event, Rejected, now_ms
from backend.streaming.simulator import (
    MALFORMED_KINDS,
    TrafficSpec,
    malformed_event,
    parse_ctr,
    replay_ratings,
    simulate_traffic,
)
from backend.streaming.validation import validate_event


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


def test_the_simulator_assigns_with_the_shared_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def spy(experiment: str, user: str, *args: object) -> str:
        calls.append((experiment, user))
        return assign_variant(experiment, user, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(simulator, "assign_variant", spy)
    spec = TrafficSpec(seed=2, users=30, experiment="home")
    list(itertools.islice(simulate_traffic(spec), 10))
    assert sorted(calls) == sorted(("home", f"u{i}") for i in range(30))


def test_weights_split_the_users_unevenly() -> None:
    spec = TrafficSpec(
        seed=6, users=4000, ctr={"A": 0.1, "B": 0.1}, weights={"A": 9, "B": 1}, run_id="r"
    )
    events = [e for e in decoded(spec, 20_000) if isinstance(e, Event)]
    for e in events:
        assert e.variant == assign_variant("exp1", e.user, ["A", "B"], [9, 1])
    shown = Counter(e.variant for e in events if e.type == "impression")
    assert shown["B"] / (shown["A"] + shown["B"]) == pytest.approx(0.1, abs=0.02)


def test_zipf_popularity_favours_a_few_items() -> None:
    spec = TrafficSpec(seed=3, items=500, popularity="zipf")
    items = Counter(e.item for e in decoded(spec, 20_000) if isinstance(e, Event))
    top10 = sum(n for _, n in items.most_common(10)) / sum(items.values())
    assert top10 > 0.5 and max(int(i[1:]) for i in items) <= 499
    uniform = Counter(
        e.item for e in decoded(TrafficSpec(seed=3, items=500), 20_000) if isinstance(e, Event)
    )
    assert sum(n for _, n in uniform.most_common(10)) / sum(uniform.values()) < 0.1


def test_realtime_stamps_the_wall_clock_in_ts_and_sent_at() -> None:
    before = now_ms()
    events = [e for e in decoded(TrafficSpec(seed=1, realtime=True), 200) if isinstance(e, Event)]
    assert all(
        e.sent_at is not None and before <= e.sent_at <= e.ts <= now_ms() + 1 for e in events
    )
    assert all(e.sent_at is None for e in decoded(TrafficSpec(seed=1), 50) if isinstance(e, Event))


def test_outgoing_events_say_their_variant_and_type() -> None:
    out = list(itertools.islice(simulate_traffic(TrafficSpec(seed=1)), 500))
    for o in out:
        e = validate_event(o.value)
        assert isinstance(e, Event) and (o.variant, o.event_type) == (e.variant, e.type)


def test_same_seed_same_traffic_and_ctr_per_variant() -> None:
    spec = TrafficSpec(seed=7, ctr={"A": 0.1, "B": 0.3}, run_id="r", start_ms=1_700_000_000_000)
    events = [e for e in decoded(spec, 20_000) if isinstance(e, Event)]
    assert events == [e for e in decoded(spec, 20_000) if isinstance(e, Event)]
    counts = Counter((e.variant, e.type) for e in events)
    ctr = {v: counts[(v, "click")] / counts[(v, "impression")] for v in ("A", "B")}
    assert ctr["A"] == pytest.approx(0.1, abs=0.015) and ctr["B"] == pytest.approx(0.3, abs=0.02)


def test_parse_ctr() -> None:
    assert parse_ctr("A=0.05, B=0.06") == {"A": 0.05, "B": 0.06}
    assert parse_ctr("control = 0, treatment = 1,") == {"control": 0.0, "treatment": 1.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one VARIANT=CTR pair"),
        (" , ", "at least one VARIANT=CTR pair"),
        ("A", "bad --ctr entry 'A'"),
        ("A=x", "bad --ctr entry 'A=x'"),
        ("A=1.5", "bad --ctr entry 'A=1.5'"),
        ("A=-0.1", "bad --ctr entry"),
        ("A=nan", "bad --ctr entry"),
        ("=0.1", "bad --ctr entry '=0.1'"),
        ("A=0.1,A=0.2", "'A' is given twice"),
    ],
)
def test_parse_ctr_names_the_entry_at_fault(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_ctr(text)


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
        {"weights": {"A": 1}},
        {"weights": {"A": 1, "B": -1}},
        {"weights": {"A": 0, "B": 0}},
        {"popularity": "pareto"},
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
