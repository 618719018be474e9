"""The monitor without a broker: its snapshot, in the shape readers get it."""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka import TopicPartition

from backend.monitoring.consumer import Monitor, MonitorOptions
from backend.monitoring.ledger import Record
from backend.monitoring.published import PartitionLag
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


def test_snapshot_lists_lag_per_partition_open_alerts_and_sorted_reasons() -> None:
    m = monitor()
    m.process({TP: [Record(0, b"{bad"), Record(1, raw(variant=None)), Record(2, None)]}, NOW)
    m.lag = {
        1: PartitionLag(partition=1, position=6, committed=None, end=6, lag=0),
        0: PartitionLag(partition=0, position=10, committed=5, end=12, lag=2),
    }
    m.lag_total = 2
    m.book.opened(("ctr_drop", (("experiment", "home"), ("variant", "B"))), 4)
    snap = m.snapshot(NOW)
    assert snap["lag"] == {
        "total": 2,
        "error": None,
        "partitions": [
            {"partition": 0, "position": 10, "committed": 5, "end": 12, "lag": 2},
            {"partition": 1, "position": 6, "committed": None, "end": 6, "lag": 0},
        ],
    }
    assert snap["alerts_open"] == [
        {"id": 4, "rule": "ctr_drop", "labels": {"experiment": "home", "variant": "B"}}
    ]
    assert list(snap["totals"]["invalid_by_reason"]) == ["missing_field", "not_json"]
    assert list(snap["totals"])[:3] == ["consumed", "valid", "invalid"]
