"""Seeded traffic: CTR parsing, determinism, stable assignment, counts."""

from __future__ import annotations

import itertools

import orjson
import pytest

from backend.monitoring.traffic import (
    TrafficCounts,
    TrafficSpec,
    generate,
    parse_ctr,
    variant_of,
)
from backend.streaming.events import Event, validate_event


def test_parse_ctr() -> None:
    assert parse_ctr("A=0.05, B=0.06") == {"A": 0.05, "B": 0.06}
    for bad in ("", "A", "A=x", "A=1.5", "=0.1", "A=0.1,A=0.2"):
        with pytest.raises(ValueError, match=r"ctr|twice"):
            parse_ctr(bad)


def test_same_seed_same_traffic_and_counts_match() -> None:
    spec = TrafficSpec({"A": 0.1, "B": 0.3}, seed=7)
    counts = TrafficCounts()
    first = list(itertools.islice(generate(spec, counts), 20_000))
    assert first == list(itertools.islice(generate(spec), 20_000))
    assert counts.total == 20_000
    for v, c in counts.by_variant.items():
        assert c["impression"] == sum(
            1 for e in first if e["variant"] == v and e["type"] == "impression"
        )
    ctr = {v: c["click"] / c["impression"] for v, c in counts.by_variant.items()}
    assert ctr["A"] == pytest.approx(0.1, abs=0.015) and ctr["B"] == pytest.approx(0.3, abs=0.02)


def test_users_keep_their_variant_and_events_pass_the_contract() -> None:
    spec = TrafficSpec({"A": 0.5, "B": 0.5}, users=50)
    for e in itertools.islice(generate(spec), 500):
        assert e["variant"] == variant_of(e["user"], ["A", "B"])
        assert isinstance(validate_event(orjson.dumps({**e, "ts": 1})), Event)
