"""The monitor on the embedded event source: the landing directory of JSON-lines files.

With no Kafka configured, events land as files in the landing directory (the producer writes
each file under a temporary name and renames it when complete). Each file plays the part of a
partition and each line the part of an offset, and the lines go through the same ledger
(``backend.monitoring.ledger``) as Kafka records, so the windows, validation, snapshots and
alerts are the same code. Progress (lines counted per file) lives in memory: like the Kafka
monitor, a restarted landing monitor starts with empty windows; it re-reads the files, but only
events within the window spans count in them.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from backend.monitoring.consumer import Monitor
from backend.monitoring.ledger import Partition, Record
from backend.streaming.events import now_ms


def scan(monitor: Monitor, landing: Path, done: dict[str, int]) -> int:
    """Count the lines of the landing files that ``done`` has not seen; returns how many."""
    batch: dict[Partition, list[Record]] = {}
    if not landing.is_dir():
        return 0
    for path in sorted(landing.glob("*.jsonl")):
        lines = path.read_bytes().splitlines()
        start = done.get(path.name, 0)
        if len(lines) > start:
            tp = Partition(f"landing/{path.name}", 0)
            batch[tp] = [Record(offset=i, value=lines[i]) for i in range(start, len(lines))]
            done[path.name] = len(lines)
    if batch:
        monitor.ledger.process(batch, now_ms())
    return sum(len(v) for v in batch.values())


async def run_landing(
    monitor: Monitor, landing: Path, stop: asyncio.Event, *, once: bool = False
) -> None:
    """Scan the landing directory and publish a snapshot every snapshot interval."""
    monitor.state = "running"
    done: dict[str, int] = {}
    while True:
        await asyncio.to_thread(scan, monitor, landing, done)
        await monitor.publish()
        if once or stop.is_set():
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), monitor.options.snapshot_interval_s)
    monitor.state = "stopped"
