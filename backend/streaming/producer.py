"""Sending events: one async ``produce`` loop over two sinks, Kafka and a landing directory.

* ``KafkaSink(bootstrap_servers, topic)`` writes each event as one record keyed by user, so all
  events of a user go to one partition and keep their order. The producer is idempotent
  (``acks=all``), so its own retries add no duplicates.
* ``DirSink(path)`` writes JSON-lines files for the embedded mode. Each file is written under a
  hidden temporary name, fsynced, then renamed (and the directory fsynced): a reader listing the
  directory (Spark's file source) sees a file whole or not at all, and a written file survives a
  crash.

``produce`` paces the events (events per second), stops after a count or a duration, and reports
progress, so the CLI, a Celery task and the tests drive both sinks the same way.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol


class ProducerError(RuntimeError):
    """Events could not be sent (broker unreachable, directory not writable...)."""


@dataclass(frozen=True)
class OutgoingEvent:
    """One record to send: the partition key (the user) and the serialized value.

    Generated traffic also says what the record is, so that what was sent can be counted: the
    reason a validator will give (``None``: valid), whether it repeats an earlier event, and the
    experiment variant and type of a valid event.
    """

    key: str | None
    value: bytes
    expected_reason: str | None = None
    duplicate: bool = False
    variant: str | None = None
    event_type: str | None = None


class EventSink(Protocol):
    """Where ``produce`` sends events."""

    async def start(self) -> None: ...

    async def send(self, batch: Sequence[OutgoingEvent]) -> None: ...

    async def stop(self) -> None: ...

    def describe(self) -> str: ...


class KafkaSink:
    """A Kafka topic (aiokafka). ``timeout_s`` bounds connecting and each request."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        linger_ms: int = 20,
        timeout_s: float = 15.0,
        compression: str | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.linger_ms = linger_ms
        self.timeout_s = timeout_s
        self.compression = compression
        self._producer: Any = None

    def describe(self) -> str:
        return f"kafka://{self.bootstrap_servers}/{self.topic}"

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=self.linger_ms,
            max_batch_size=1 << 20,
            compression_type=self.compression,
            request_timeout_ms=int(self.timeout_s * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), timeout=self.timeout_s)
        except Exception as exc:  # aiokafka raises several unrelated types for one cause
            await producer.stop()
            raise ProducerError(
                f"cannot connect to Kafka at {self.bootstrap_servers} ({type(exc).__name__}: "
                f"{exc}); start it (scripts/kafka.sh start) or fix "
                "RECFLOW_KAFKA_BOOTSTRAP_SERVERS"
            ) from exc
        self._producer = producer

    async def send(self, batch: Sequence[OutgoingEvent]) -> None:
        if self._producer is None:
            raise ProducerError("KafkaSink.send called before start()")
        futures = [
            await self._producer.send(
                self.topic, e.value, key=None if e.key is None else e.key.encode("utf-8")
            )
            for e in batch
        ]
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


def ensure_topic(
    bootstrap_servers: str, topic: str, *, partitions: int = 3, timeout_s: float = 15.0
) -> bool:
    """Create ``topic`` with ``partitions`` partitions (replication 1) unless it exists.

    Returns True when it was created. Partitions bound the parallelism of every consumer,
    Spark's included, so a topic auto-created with the broker's default of one is worth avoiding.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    async def create() -> bool:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout_s * 1000)
        )
        try:
            await asyncio.wait_for(admin.start(), timeout=timeout_s)
        except Exception as exc:  # aiokafka raises several unrelated types for one cause
            raise ProducerError(
                f"cannot connect to Kafka at {bootstrap_servers} ({type(exc).__name__}: {exc}); "
                "start it (scripts/kafka.sh start) or fix RECFLOW_KAFKA_BOOTSTRAP_SERVERS"
            ) from exc
        try:
            if topic in await admin.list_topics():
                return False
            try:
                await admin.create_topics([NewTopic(topic, partitions, 1)])
            except TopicAlreadyExistsError:
                return False
            return True
        finally:
            await admin.close()

    return asyncio.run(create())


class DirSink:
    """A landing directory of JSON-lines files, ``max_events_per_file`` events per file at most
    (a file is also closed at the end of each ``send`` call with ``flush_each_send``)."""

    def __init__(
        self,
        path: Path,
        *,
        prefix: str = "events",
        max_events_per_file: int = 100_000,
        flush_each_send: bool = False,
    ) -> None:
        if max_events_per_file < 1:
            raise ValueError("max_events_per_file must be at least 1")
        self.path = Path(path)
        self.prefix = prefix
        self.max_events_per_file = max_events_per_file
        self.flush_each_send = flush_each_send
        self.files_written: list[Path] = []
        self._buffer: list[bytes] = []
        self._run = uuid.uuid4().hex[:8]
        self._seq = itertools.count()

    def describe(self) -> str:
        return f"dir://{self.path}"

    async def start(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProducerError(f"cannot create the landing directory {self.path}: {exc}") from exc

    async def send(self, batch: Sequence[OutgoingEvent]) -> None:
        for event in batch:
            if b"\n" in event.value or b"\r" in event.value:
                raise ProducerError("a JSON-lines record must not contain a line break")
            self._buffer.append(event.value)
            if len(self._buffer) >= self.max_events_per_file:
                await asyncio.to_thread(self._flush)
        if self.flush_each_send:
            await asyncio.to_thread(self._flush)

    async def send_lines(self, lines: Sequence[bytes]) -> None:
        """``send`` for records already encoded by the caller, one JSON document per item,
        each without a line break (``orjson`` output is)."""
        self._buffer.extend(lines)
        if len(self._buffer) >= self.max_events_per_file or self.flush_each_send:
            await asyncio.to_thread(self._flush)

    async def stop(self) -> None:
        await asyncio.to_thread(self._flush)

    def _flush(self) -> None:
        if not self._buffer:
            return
        stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%S")
        name = f"{self.prefix}-{stamp}-{self._run}-{next(self._seq):06d}.jsonl"
        tmp = self.path / f".{name}.tmp"
        data = b"\n".join(self._buffer) + b"\n"
        # A failed write leaves nothing behind: the caller is told the send failed, so the
        # events must not reach a later file either.
        self._buffer = []
        try:
            with tmp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path / name)
            _fsync_dir(self.path)  # the rename itself survives a crash only once the dir is synced
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ProducerError(f"cannot write {self.path / name}: {exc}") from exc
        self.files_written.append(self.path / name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: ``progress(sent, total)``: ``total`` is the count asked for, or None when unbounded.
ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True)
class ProduceResult:
    """What was sent: counts in total, by expected reason (``"valid"`` for valid events), of
    deliberate duplicates, and of valid events per variant and type (duplicates left out:
    ``{"A": {"impression": 950, "click": 48}}``), with the wall time."""

    sent: int
    duration_s: float
    expected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    variants: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.sent / self.duration_s if self.duration_s > 0 else 0.0


async def produce(
    events: Iterable[OutgoingEvent],
    sink: EventSink,
    *,
    rate: float | None = None,
    count: int | None = None,
    duration_s: float | None = None,
    progress: ProgressCallback | None = None,
    chunk: int = 2000,
    stop: asyncio.Event | None = None,
) -> ProduceResult:
    """Send ``events`` to ``sink`` until the iterable ends, ``count`` are sent, ``duration_s``
    has passed or ``stop`` is set, at no more than ``rate`` events per second (None: as fast as
    possible).

    Events are sent in chunks of at most ``chunk`` (smaller under a rate limit, so pacing stays
    smooth); ``progress`` is called after each chunk. Returns once the sink has taken every event
    (Kafka: acknowledged by the broker).
    """
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive events/s, got {rate}")
    if count is not None and count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    step = chunk if rate is None else max(1, min(chunk, int(rate / 20)))
    source = iter(events) if count is None else itertools.islice(events, count)
    expected: dict[str, int] = {}
    variants: dict[str, dict[str, int]] = {}
    duplicates = sent = 0
    await sink.start()
    started = time.monotonic()
    try:
        while stop is None or not stop.is_set():
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
            batch = list(itertools.islice(source, step))
            if not batch:
                break
            await sink.send(batch)
            sent += len(batch)
            for event in batch:
                key = event.expected_reason or "valid"
                expected[key] = expected.get(key, 0) + 1
                duplicates += event.duplicate
                if event.variant is not None and event.event_type and not event.duplicate:
                    per = variants.setdefault(event.variant, {})
                    per[event.event_type] = per.get(event.event_type, 0) + 1
            if progress is not None:
                progress(sent, count)
            if rate is not None:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
    finally:
        await sink.stop()
    return ProduceResult(
        sent,
        time.monotonic() - started,
        dict(sorted(expected.items())),
        duplicates,
        dict(sorted(variants.items())),
    )


def produce_sync(
    events: Iterable[OutgoingEvent],
    sink: EventSink,
    *,
    rate: float | None = None,
    count: int | None = None,
    duration_s: float | None = None,
    progress: ProgressCallback | None = None,
) -> ProduceResult:
    """``produce`` for callers without an event loop (CLI, Celery tasks, a separate process)."""
    return asyncio.run(
        produce(events, sink, rate=rate, count=count, duration_s=duration_s, progress=progress)
    )
