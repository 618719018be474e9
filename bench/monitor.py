"""Live monitor throughput and freshness on the real Kafka broker; prints one JSON line.

Phase 1 (drain): ``--events`` simulated events are written to a fresh topic first, then a monitor
consumes them from the beginning; ``events_per_s`` is the number consumed divided by the time to
reach zero lag (validation with the shared contract, window updates and commits included).
``ceiling_events_per_s`` is an aiokafka consumer of the same topic and partitions, in the same
batches, that only counts records: what the client library allows on this machine; ``ratio`` is
the monitor's share of it.

Phase 2 (steady): a separate producer process sends ``--rate`` events/s for ``--seconds`` to
another fresh topic while a monitor watches it; ``freshness_p99_s`` is the monitor's own
event-time-to-published-snapshot p99 over that phase, and the lag read once a second shows
whether the monitor keeps up: ``lag_growth_per_s`` is the least-squares slope of those readings
(near 0 when it keeps up, about rate minus throughput when it does not).

Needs RECFLOW_KAFKA_BOOTSTRAP_SERVERS (``eval "$(bash scripts/services.sh env)"``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from backend.config import Settings  # noqa: E402
from backend.monitoring.consumer import Monitor, MonitorOptions  # noqa: E402
from backend.monitoring.snapshots import MemorySnapshotStore  # noqa: E402
from backend.streaming.simulator import TrafficSpec, simulate_traffic  # noqa: E402

#: The monitored traffic: an experiment of two variants, 5,000 users, Zipf-like item popularity
#: (so the windows keep a realistic number of items), stamped with the wall clock when sent.
TRAFFIC = TrafficSpec(
    seed=1,
    users=5000,
    items=500,
    experiment="home",
    ctr={"A": 0.05, "B": 0.06},
    popularity="zipf",
    realtime=True,
)


def make_topic(name: str, partitions: int) -> None:
    subprocess.run(
        ["bash", str(REPO / "scripts" / "kafka.sh"), "topic", name, str(partitions)],
        check=True,
        capture_output=True,
    )


async def _send_paced(
    bootstrap: str, topic: str, rate: float | None, n: int | None, secs: float | None
) -> None:
    """Send simulated events in per-partition record batches (keyed by user, as the producer
    keys them), paced in 20 ms steps: the one-record-at-a-time producer tops out near 12k
    events/s on this machine, below the rates the monitor is measured at."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        parts = sorted(await producer.partitions_for(topic))
        events = simulate_traffic(TRAFFIC)
        step = 2000 if rate is None else max(1, int(rate / 50))
        sent = 0
        started = time.monotonic()
        while (n is None or sent < n) and (secs is None or time.monotonic() - started < secs):
            chunk = list(itertools.islice(events, step if n is None else min(step, n - sent)))
            batches = {p: producer.create_batch() for p in parts}
            pending = []
            for ev in chunk:
                key = ev.key.encode() if ev.key is not None else None
                p = parts[zlib.crc32(key or b"") % len(parts)]
                if batches[p].append(key=key, value=ev.value, timestamp=None) is None:
                    pending.append(await producer.send_batch(batches[p], topic, partition=p))
                    batches[p] = producer.create_batch()
                    batches[p].append(key=key, value=ev.value, timestamp=None)
            for p, batch in batches.items():
                if batch.record_count():
                    pending.append(await producer.send_batch(batch, topic, partition=p))
            await asyncio.gather(*pending)
            sent += len(chunk)
            if rate is not None:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
    finally:
        await producer.stop()


def _produce_proc(
    bootstrap: str, topic: str, rate: float | None, n: int | None, secs: float | None
) -> None:
    asyncio.run(_send_paced(bootstrap, topic, rate, n, secs))


async def ceiling(bootstrap: str, topic: str, n: int, max_batch: int) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-ceiling-{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        seen = 0
        t_first: float | None = None
        start_count = 0
        while seen < n:
            batch = await consumer.getmany(timeout_ms=100, max_records=max_batch)
            got = sum(len(records) for records in batch.values())
            if got and t_first is None:
                t_first, start_count = time.perf_counter(), got
            seen += got
        elapsed = time.perf_counter() - (t_first or 0.0)
    finally:
        await consumer.stop()
    return {"ceiling_events_per_s": round((n - start_count) / elapsed, 1)}


def lag_slope(lags: list[int]) -> float | None:
    """Least-squares slope (events per second) of lag readings taken once a second."""
    if len(lags) < 2:
        return None
    mean_x = (len(lags) - 1) / 2
    mean_y = sum(lags) / len(lags)
    num = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(lags))
    den = sum((x - mean_x) ** 2 for x in range(len(lags)))
    return round(num / den, 1)


async def drain(bootstrap: str, topic: str, n: int, workers: int) -> dict[str, Any]:
    store = MemorySnapshotStore()
    opts = MonitorOptions(
        bootstrap,
        topic=topic,
        group_id=f"bench-{topic}",
        auto_offset_reset="earliest",
        validate_workers=workers,
    )
    monitor = Monitor(opts, store)
    stop = asyncio.Event()
    task = asyncio.create_task(monitor.run(stop))
    t_first: float | None = None
    lag_start: int | None = None
    while monitor.totals.consumed < n:
        await asyncio.sleep(0.05)
        if t_first is None and monitor.totals.consumed > 0:
            t_first = time.perf_counter()
            start_count = monitor.totals.consumed
        if lag_start is None and monitor.lag_total is not None:
            lag_start = monitor.lag_total
    t_end = time.perf_counter()
    await asyncio.sleep(1.5)  # one more lag reading
    lag_end = monitor.lag_total
    stop.set()
    await task
    assert t_first is not None
    return {
        "events_per_s": round((n - start_count) / (t_end - t_first), 1),
        "drain_events": n,
        "drain_lag_start": lag_start,
        "drain_lag_end": lag_end,
    }


async def steady(
    bootstrap: str, topic: str, rate: float, seconds: float, workers: int, interval_s: float
) -> dict[str, Any]:
    store = MemorySnapshotStore()
    opts = MonitorOptions(
        bootstrap,
        topic=topic,
        group_id=f"bench-{topic}",
        validate_workers=workers,
        snapshot_interval_s=interval_s,
    )
    monitor = Monitor(opts, store)
    stop = asyncio.Event()
    task = asyncio.create_task(monitor.run(stop))
    while monitor.state != "running" or not monitor.lag:
        await asyncio.sleep(0.1)
    proc = multiprocessing.get_context("spawn").Process(
        target=_produce_proc, args=(bootstrap, topic, rate, None, seconds)
    )
    proc.start()
    await asyncio.sleep(3)
    lags: list[int] = []
    while proc.is_alive():
        await asyncio.sleep(1)
        if monitor.lag_total is not None:
            lags.append(monitor.lag_total)
    await asyncio.sleep(2)
    snap = store.get() or {}
    stop.set()
    await task
    return {
        "steady_rate": rate,
        "steady_events": monitor.totals.consumed,
        "steady_events_per_s": round(monitor.totals.consumed / seconds, 1),
        "freshness_p50_s": snap.get("processing", {}).get("freshness_p50_s"),
        "freshness_p99_s": snap.get("processing", {}).get("freshness_p99_s"),
        "latency_p99_s": snap.get("windows", {}).get("1m", {}).get("latency_p99_s"),
        "steady_lag_start": lags[0] if lags else None,
        "steady_lag_end": lags[-2] if len(lags) > 1 else None,
        "steady_lag_max": max(lags) if lags else None,
        "lag_growth_per_s": lag_slope(lags[:-1]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000, help="events in the drain phase")
    ap.add_argument("--rate", type=float, default=10_000, help="events/s in the steady phase")
    ap.add_argument("--seconds", type=float, default=20, help="length of the steady phase")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--validate-workers", type=int, default=0, help="validation processes")
    ap.add_argument(
        "--snapshot-interval",
        type=float,
        default=Settings.model_fields["monitor_snapshot_interval_s"].default,
        help="seconds between snapshots in the steady phase (default: the monitor's, "
        "RECFLOW_MONITOR_SNAPSHOT_INTERVAL_S); freshness includes the wait for one",
    )
    args = ap.parse_args()
    bootstrap = Settings().kafka_bootstrap_servers
    if not bootstrap:
        sys.exit('set RECFLOW_KAFKA_BOOTSTRAP_SERVERS: eval "$(bash scripts/services.sh env)"')
    run = uuid.uuid4().hex[:8]
    t1, t2 = f"bench-monitor-drain-{run}", f"bench-monitor-steady-{run}"
    make_topic(t1, args.partitions)
    make_topic(t2, args.partitions)
    t0 = time.perf_counter()
    proc = multiprocessing.get_context("spawn").Process(
        target=_produce_proc, args=(bootstrap, t1, None, args.events, None)
    )
    proc.start()
    proc.join()
    fill_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "bench": "monitor",
        "cores": os.cpu_count(),
        "partitions": args.partitions,
        "validate_workers": args.validate_workers,
        "snapshot_interval_s": args.snapshot_interval,
        "fill_events_per_s": round(args.events / fill_s, 1),
    }
    out.update(asyncio.run(ceiling(bootstrap, t1, args.events, MonitorOptions("-").max_batch)))
    out.update(asyncio.run(drain(bootstrap, t1, args.events, args.validate_workers)))
    out["ratio"] = round(out["events_per_s"] / out["ceiling_events_per_s"], 3)
    out.update(
        asyncio.run(
            steady(
                bootstrap,
                t2,
                args.rate,
                args.seconds,
                args.validate_workers,
                args.snapshot_interval,
            )
        )
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
