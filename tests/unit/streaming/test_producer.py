from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from backend.streaming.events import Event
from backend.streaming.producer import (
    DirSink,
    KafkaSink,
    OutgoingEvent,
    ProducerError,
    produce,
    produce_sync,
)
from backend.streaming.simulator import TrafficSpec, simulate_traffic
from backend.streaming.validation import validate_event


def test_dir_sink_writes_whole_jsonl_files(tmp_path: Path) -> None:
    sink = DirSink(tmp_path / "landing", max_events_per_file=300)
    calls: list[tuple[int, int | None]] = []
    result = produce_sync(
        simulate_traffic(TrafficSpec(seed=2)),
        sink,
        count=1000,
        progress=lambda sent, total: calls.append((sent, total)),
    )
    assert result.sent == 1000 and result.expected == {"valid": 1000}
    files = sorted((tmp_path / "landing").iterdir())
    assert [f.name.startswith(".") for f in files] == [False] * 4  # no temporary file left
    assert all(f.suffix == ".jsonl" for f in files)
    lines = [line for f in files for line in f.read_bytes().splitlines()]
    assert len(lines) == 1000
    assert all(isinstance(validate_event(line), Event) for line in lines)
    assert calls[-1] == (1000, 1000)


def test_dir_sink_flush_each_send(tmp_path: Path) -> None:
    sink = DirSink(tmp_path, flush_each_send=True)
    events = [OutgoingEvent("u", json.dumps({"n": i}).encode()) for i in range(5)]
    asyncio.run(produce(events, sink, chunk=2))
    assert len(sink.files_written) == 3


def test_a_failed_write_leaves_no_file_and_its_events_reach_no_later_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = DirSink(tmp_path, flush_each_send=True)
    asyncio.run(sink.start())
    real_replace = os.replace

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(ProducerError, match="No space left"):
        asyncio.run(sink.send([OutgoingEvent("u", b'{"n":1}')]))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(os, "replace", real_replace)
    asyncio.run(sink.send([OutgoingEvent("u", b'{"n":2}')]))
    (written,) = sink.files_written
    assert written.read_bytes() == b'{"n":2}\n'


def test_dir_sink_refuses_line_breaks(tmp_path: Path) -> None:
    with pytest.raises(ProducerError, match="line break"):
        produce_sync([OutgoingEvent("u", b"{\n}")], DirSink(tmp_path))


def test_rate_limit_paces_sending(tmp_path: Path) -> None:
    started = time.monotonic()
    result = produce_sync(
        simulate_traffic(TrafficSpec(seed=1)), DirSink(tmp_path), rate=400, count=200
    )
    assert result.sent == 200
    # 200 events at 400/s cannot take less than about half a second, however fast the machine.
    assert time.monotonic() - started >= 0.45


def test_duration_stops_an_endless_stream(tmp_path: Path) -> None:
    result = produce_sync(
        simulate_traffic(TrafficSpec(seed=1)), DirSink(tmp_path), rate=1000, duration_s=0.3
    )
    assert 0 < result.sent < 1000


def test_counts_expected_reasons_and_duplicates(tmp_path: Path) -> None:
    spec = TrafficSpec(seed=4, malformed_fraction=0.2, duplicate_fraction=0.1)
    out = list(itertools.islice(simulate_traffic(spec), 3000))
    result = produce_sync(out, DirSink(tmp_path))
    assert sum(result.expected.values()) == 3000
    assert result.expected["valid"] == sum(1 for o in out if o.expected_reason is None)
    assert result.duplicates == sum(o.duplicate for o in out)


def test_counts_valid_events_per_variant_and_type(tmp_path: Path) -> None:
    spec = TrafficSpec(seed=4, malformed_fraction=0.1, duplicate_fraction=0.1)
    out = list(itertools.islice(simulate_traffic(spec), 3000))
    result = produce_sync(out, DirSink(tmp_path))
    expected: dict[str, Counter[str]] = {}
    for o in out:
        event = validate_event(o.value)
        if isinstance(event, Event) and event.variant and not o.duplicate:
            expected.setdefault(event.variant, Counter())[event.type] += 1
    assert result.variants == expected
    assert set(expected) == {"A", "B"} and sum(result.expected.values()) == 3000


def test_a_stop_event_ends_an_endless_stream(tmp_path: Path) -> None:
    async def run() -> int:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stop.set)
        result = await produce(
            simulate_traffic(TrafficSpec(seed=1)), DirSink(tmp_path), rate=1000, stop=stop
        )
        return result.sent

    assert 0 < asyncio.run(run()) < 1000


def test_kafka_sink_fails_fast_when_no_broker() -> None:
    sink = KafkaSink("127.0.0.1:1", "t", timeout_s=3)
    started = time.monotonic()
    with pytest.raises(ProducerError, match="cannot connect to Kafka"):
        produce_sync([OutgoingEvent("u", b"{}")], sink)
    assert time.monotonic() - started < 30
