"""The impression logger: nothing is dropped while the sink keeps up (or while waiting for room
is allowed), and when the sink is blocked exactly what did not fit is dropped and counted, in
the logger and in Prometheus; what is left at shutdown is flushed, or counted when it cannot be."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from backend.monitoring.prometheus import REGISTRY
from backend.serving.impressions import ImpressionLogger
from backend.streaming.events import Event, encode_event
from backend.streaming.producer import DirSink, OutgoingEvent
from backend.streaming.validation import validate_event


class MemorySink:
    """Keeps what it is sent; ``gate`` (when given) holds every send until it is set, and
    ``delay_s`` makes each send slow."""

    def __init__(self, gate: threading.Event | None = None, delay_s: float = 0.0) -> None:
        self.gate = gate
        self.delay_s = delay_s
        self.events: list[OutgoingEvent] = []
        self.stopped = False

    def describe(self) -> str:
        return "memory://"

    async def start(self) -> None:
        pass

    async def send(self, batch: Sequence[OutgoingEvent]) -> None:
        if self.gate is not None:
            await asyncio.to_thread(self.gate.wait)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.events.extend(batch)

    async def stop(self) -> None:
        self.stopped = True


class BrokenSink(MemorySink):
    async def send(self, batch: Sequence[OutgoingEvent]) -> None:
        raise ConnectionError("broker unreachable")


def answer(user: str, n: int, rid: str, variant: str | None = "A") -> dict[str, Any]:
    return {
        "user": user,
        "model_version": "v1.2",
        "items": [{"item": f"i{k}"} for k in range(n)],
        "recommendation_id": rid,
        "experiment": None if variant is None else "home",
        "variant": variant,
    }


def dropped_total() -> float:
    return REGISTRY.get_sample_value("recflow_impressions_dropped_total") or 0.0


def test_nothing_is_dropped_when_the_sink_keeps_up() -> None:
    sink = MemorySink()
    logger = ImpressionLogger(sink, capacity=1000, batch_size=64, flush_s=0.05)
    before = dropped_total()
    logger.start()
    for k in range(200):
        assert logger.log(answer(f"u{k}", 5, f"r{k}", variant=None if k % 2 else "A"), 1000 + k)
    logger.close(timeout_s=10)
    assert logger.offered == logger.accepted == logger.delivered == len(sink.events) == 1000
    assert logger.dropped == 0 and dropped_total() == before and sink.stopped
    events = [validate_event(e.value) for e in sink.events]
    assert all(isinstance(e, Event) for e in events)
    # Byte for byte the contract's canonical form (the ingestion's fast path).
    assert [encode_event(e) for e in events if isinstance(e, Event)] == [
        e.value for e in sink.events
    ]
    first = orjson.loads(sink.events[0].value)
    assert first == {
        "schema_version": 1,
        "event_id": "r0-1",
        "user": "u0",
        "item": "i0",
        "type": "impression",
        "experiment": "home",
        "variant": "A",
        "ts": 1000,
        "source": "serving",
        "recommendation_id": "r0",
        "model_version": "v1.2",
    }
    assert "experiment" not in orjson.loads(sink.events[5].value)  # u1: in no experiment
    assert len({e.event_id for e in events if isinstance(e, Event)}) == 1000


def test_a_blocked_sink_drops_exactly_what_did_not_fit() -> None:
    gate = threading.Event()
    sink = MemorySink(gate)
    logger = ImpressionLogger(sink, capacity=50, batch_size=10, flush_s=0.01)
    before = dropped_total()
    logger.start()
    kept = [logger.log(answer(f"u{k}", 5, f"r{k}"), 0) for k in range(30)]
    # The buffer holds 50 events, the batch held by the blocked sink included: 10 answers fit,
    # and the others are refused at once (put_timeout_s=0), while the sink is still blocked.
    assert kept == [True] * 10 + [False] * 20
    assert logger.offered == 150 and logger.accepted == 50 and logger.dropped == 100
    assert dropped_total() - before == 100
    gate.set()
    logger.close(timeout_s=10)
    assert logger.delivered == len(sink.events) == 50
    assert logger.dropped == logger.offered - logger.delivered == 100
    assert dropped_total() - before == 100
    delivered = {orjson.loads(e.value)["recommendation_id"] for e in sink.events}
    assert delivered == {f"r{k}" for k in range(10)}  # answers whole, in order


def test_waiting_for_room_absorbs_a_slow_sink() -> None:
    sink = MemorySink(delay_s=0.02)
    logger = ImpressionLogger(sink, capacity=10, batch_size=5, flush_s=0.01, put_timeout_s=2.0)
    logger.start()
    assert all(logger.log(answer(f"u{k}", 5, f"r{k}"), 0) for k in range(12))
    logger.close(timeout_s=10)
    assert logger.dropped == 0 and logger.delivered == len(sink.events) == 60


def test_what_cannot_be_sent_by_shutdown_is_counted_as_dropped() -> None:
    sink = BrokenSink()
    logger = ImpressionLogger(sink, capacity=100, batch_size=10, flush_s=0.01)
    before = dropped_total()
    logger.start()
    for k in range(4):
        assert logger.log(answer(f"u{k}", 3, f"r{k}"), 0)
    time.sleep(0.3)  # a few failed attempts: nothing leaves the buffer
    assert logger.pending == 12 and logger.last_error == "ConnectionError: broker unreachable"
    logger.close(timeout_s=2)
    assert logger.delivered == 0 and logger.dropped == logger.offered == 12
    assert dropped_total() - before == 12 and logger.pending == 0
    assert not logger.log(answer("late", 2, "r9"), 0)  # closed: refused and counted
    assert logger.dropped == 14


def test_a_landing_directory_gets_every_line_in_the_canonical_form(tmp_path: Path) -> None:
    sink = DirSink(tmp_path, prefix="impressions", flush_each_send=True)
    logger = ImpressionLogger(sink, capacity=1000, batch_size=50, flush_s=0.05)
    logger.start()
    odd = {
        "user": "odd-user",
        "model_version": "v1.2",
        "items": [{"item": "plain"}, {"item": 'odd "id" é'}],
        "recommendation_id": "r9",
    }
    assert logger.log(odd, 5)
    for k in range(60):
        assert logger.log(answer(f"u{k}", 3, f"r{k}"), 1000 + k)
    logger.close(timeout_s=10)
    lines = [
        line
        for f in sorted(tmp_path.glob("impressions-*.jsonl"))
        for line in f.read_bytes().split(b"\n")
        if line
    ]
    assert logger.delivered == logger.offered == len(lines) == 182 and logger.dropped == 0
    # An id outside the contract's pattern (a model trained on free-form ids) is still written
    # as valid JSON; the ingestion quarantines it with its reason, like any other bad event.
    odd_lines = [orjson.loads(line) for line in lines if b'"user":"odd-user"' in line]
    assert [(e["event_id"], e["item"]) for e in odd_lines] == [
        ("r9-1", "plain"),
        ("r9-2", 'odd "id" é'),
    ]
    events = [validate_event(line) for line in lines if b'"user":"odd-user"' not in line]
    assert all(isinstance(e, Event) for e in events) and len(events) == 180
    assert [encode_event(e) for e in events if isinstance(e, Event)] == [
        line for line in lines if b'"user":"odd-user"' not in line
    ]
