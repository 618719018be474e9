"""The monitor's batch processing without a broker: bad records, skew, redelivery, snapshot."""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka import TopicPartition

from backend.monitoring.consumer import Monitor, MonitorOptions, Record
from backend.monitoring.snapshots import MemorySnapshotStore

NOW = 1_700_000_000_000
TP = TopicPartition("t", 0)


def raw(**over: Any) -> bytes:
    base = {"schema_version": 1, "event_id": "e1", "user": "u1", "item": "i1", "type": "click"}
    base.update(ts=NOW - 200, experiment="home", variant="A")
    base.update(over)
    return orjson.dumps({k: v for k, v in base.items() if v is not None})


def monitor() -> Monitor:
    return Monitor(
        MonitorOptions("127.0.0.1:1", topic="t"), MemorySnapshotStore(), clock=lambda: NOW
    )


def test_bad_records_are_counted_by_reason_and_skipped() -> None:
    m = monitor()
    values: list[bytes | None] = [
        raw(),
        b"{not json",
        None,  # a tombstone
        raw(experiment=None, variant=None, type="impression"),  # no experiment: counted
        raw(variant=None),  # experiment without variant: the contract rejects it
        raw(ts=NOW + 10 * 60_000),  # from the future beyond the allowed skew
        raw(ts=NOW + 60_000),  # ahead, but within the skew: counted now
        raw(ts=NOW - 2 * 3600_000),  # older than the longest window: late
    ]
    commit = m.process({TP: [Record(i, v) for i, v in enumerate(values)]}, NOW)
    assert commit == {TP: 8}
    t = m.totals
    assert (t.consumed, t.valid, t.invalid) == (8, 4, 4)
    assert t.invalid_by_reason == {"not_json": 2, "missing_field": 1, "ts_too_far_future": 1}
    assert (t.counted, t.future, t.late, t.without_experiment) == (3, 1, 1, 1)
    s = m.windows.summary(60)
    assert s.events_by_type == {"click": 2, "impression": 1}
    assert [(v.variant, v.impressions, v.clicks) for v in s.variants] == [("A", 0, 2)]


def test_records_already_counted_are_skipped_when_redelivered() -> None:
    m = monitor()
    m.process({TP: [Record(0, raw()), Record(1, raw())]}, NOW)
    commit = m.process({TP: [Record(1, raw()), Record(2, raw())]}, NOW)
    assert commit == {TP: 3}
    assert (m.totals.consumed, m.totals.redelivered_skipped) == (3, 1)
    assert m.windows.summary(60).events == 3


def test_snapshot_is_json_and_carries_state_windows_and_alert_conditions() -> None:
    m = monitor()
    m.process({TP: [Record(0, raw(type="impression")), Record(1, raw())]}, NOW)
    snap = m.snapshot(NOW)
    assert orjson.loads(orjson.dumps(snap)) == snap
    assert set(snap["windows"]) == {"1m", "5m", "1h"}
    assert snap["monitor"]["state"] == "starting" and snap["monitor"]["ready"] is False
    assert snap["windows"]["1m"]["variants"][0]["ctr"] == 1.0
    rules = {c.rule for c in m.conditions(snap)}
    assert rules == {"ctr_drop", "lag", "no_events"}
