"""The embedded monitor: landing-directory files through the same aggregation as Kafka."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import orjson

from backend.monitoring.consumer import Monitor, MonitorOptions
from backend.monitoring.landing import run_landing, scan
from backend.monitoring.snapshots import MemorySnapshotStore
from backend.streaming.producer import DirSink, produce_sync
from backend.streaming.simulator import TrafficSpec, simulate_traffic


def test_landing_files_are_counted_once_with_ctr_per_variant(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    spec = TrafficSpec(seed=4, experiment="home", ctr={"A": 0.05, "B": 0.1},
                       malformed_fraction=0.02)  # fmt: skip
    produced = produce_sync(simulate_traffic(spec), DirSink(landing, max_events_per_file=3000),
                            count=9000)  # fmt: skip
    expected = Counter()
    for path in landing.glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            try:
                ev = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(ev, dict) and ev.get("type") in ("impression", "click"):
                expected[(ev.get("variant"), ev["type"])] += 1
    store = MemorySnapshotStore()
    mon = Monitor(MonitorOptions(bootstrap_servers=f"landing:{landing}"), store)
    asyncio.run(run_landing(mon, landing, asyncio.Event(), once=True))
    assert mon.totals.consumed == 9000
    assert mon.totals.valid == produced.expected["valid"]
    assert mon.totals.invalid == 9000 - produced.expected["valid"]
    snap = store.get()
    assert snap is not None
    by_variant = {v["variant"]: v for v in snap["windows"]["1h"]["variants"]}
    for variant in ("A", "B"):
        assert by_variant[variant]["impressions"] == expected[(variant, "impression")]
        assert by_variant[variant]["clicks"] == expected[(variant, "click")]
    # A second scan finds nothing new: lines are counted once.
    assert scan(mon, landing, {p.name: len(p.read_bytes().splitlines())
                               for p in landing.glob("*.jsonl")}) == 0  # fmt: skip
