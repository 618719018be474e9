"""Send events to Kafka at a steady rate (the traffic simulator's transport).

A minimal aiokafka producer: each event is stamped with ``ts`` and ``sent_at`` (now, epoch ms),
encoded with the shared contract's ``encode_event`` and keyed by user, so one user's events stay
in order on one partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from backend.streaming.events import encode_event, now_ms


@dataclass(frozen=True)
class ProduceReport:
    """How many events were sent (and acknowledged by the broker) in how long."""

    sent: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def produce(
    bootstrap_servers: str,
    topic: str,
    events: Iterator[dict[str, Any]],
    *,
    rate: float | None,
    max_events: int | None = None,
    duration_s: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> ProduceReport:
    """Send events until ``max_events`` or ``duration_s`` (at least one must be given).

    ``rate`` is events per second (``None``: as fast as possible). Returns after every event is
    acknowledged (acks=all), so the broker holds all ``sent`` events. Setting ``stop`` ends it
    early, just as cleanly.
    """
    if max_events is None and duration_s is None:
        raise ValueError("give max_events or duration_s, or the producer would never stop")
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be > 0 events/s, got {rate}")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    sent = 0
    t0 = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    try:
        while True:
            elapsed = time.monotonic() - t0
            if duration_s is not None and elapsed >= duration_s:
                break
            if stop is not None and stop.is_set():
                break
            if max_events is not None and sent >= max_events:
                break
            due = sent + 1000 if rate is None else int(rate * elapsed) + 1
            if max_events is not None:
                due = min(due, max_events)
            if due <= sent:
                await asyncio.sleep(0.005)
                continue
            stamp = now_ms()
            for _ in range(due - sent):
                ev = next(events)
                ev["ts"] = stamp
                ev["sent_at"] = stamp
                pending.append(
                    await producer.send(topic, encode_event(ev), key=str(ev["user"]).encode())
                )
                sent += 1
            if len(pending) > 20_000:
                await asyncio.gather(*pending)
                pending.clear()
            if on_progress is not None:
                on_progress(sent)
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    return ProduceReport(sent=sent, elapsed_s=time.monotonic() - t0)
