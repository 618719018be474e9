"""Impression logging: one ``impression`` event per item an answer showed, sent in batches by a
background thread, so a request never waits for Kafka or the disk.

The request path appends the answer (user, items, experiment, variant, recommendation id, model
version) to a bounded in-process buffer and returns; the sender thread turns answers into events
of the contract (``backend.streaming.events``) and sends them to the sink (``KafkaSink`` or the
landing directory's ``DirSink``) in batches of up to ``batch_size`` events, or every
``flush_s`` seconds, whichever comes first.

Back-pressure, when the sink is slower than the traffic: the buffer holds at most ``capacity``
events, counting those being sent (they leave it only once the sink took them, so a failed batch
is sent again and nothing is lost while there is room). An answer that does not fit waits at
most ``put_timeout_s`` for room (0 by default: the request path runs on the event loop, where
waiting would hold up every request of the process) and is then dropped whole, so an answer's
impressions are logged all or none. Every dropped event is counted (``dropped`` and the
Prometheus counter ``recflow_impressions_dropped_total``) and logged (at most one line per
``_LOG_EVERY_S``). On ``close`` the buffer is flushed; what cannot be sent within the timeout is
counted as dropped too, so ``accepted + dropped == offered`` and ``delivered + dropped == offered``
once closed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import Counter

from backend.config import Settings
from backend.monitoring.prometheus import REGISTRY
from backend.streaming.events import FIELD_NAMES, Event
from backend.streaming.producer import DirSink, EventSink, KafkaSink, OutgoingEvent

log = logging.getLogger(__name__)

DROPPED = Counter(
    "recflow_impressions_dropped_total",
    "Impression events serving could not log (buffer full, or unsent at shutdown).",
    registry=REGISTRY,
)
SENT = Counter(
    "recflow_impressions_sent_total",
    "Impression events serving handed to the sink (Kafka or the landing directory).",
    registry=REGISTRY,
)
SOURCE = "serving"
_LOG_EVERY_S = 10.0
_RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
_ANSWERS_PER_SLICE = 32
# Markers no id can hold (ids are 1-64 characters of [A-Za-z0-9_-]), and that pattern.
_EID_MARK, _ITEM_MARK = "\u241eE", "\u241eI"
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(slots=True)
class Shown:
    """One answer as the buffer holds it (events are built by the sender, off the request path)."""

    ts: int
    user: str
    items: list[str]
    recommendation_id: str
    model_version: str
    experiment: str | None
    variant: str | None

    def values(self) -> list[bytes]:
        """One impression event per item shown, ids ``<recommendation id>-<rank>``, each
        exactly as ``encode_event`` writes it (fields in contract order)."""
        first = Event(
            event_id=f"{self.recommendation_id}-1",
            user=self.user,
            item=self.items[0],
            type="impression",
            ts=self.ts,
            experiment=self.experiment,
            variant=self.variant,
            source=SOURCE,
            recommendation_id=self.recommendation_id,
            model_version=self.model_version,
        )
        # The events of an answer differ only in event_id and item: the answer's payload is
        # encoded once, in contract order, with markers where those two go, and each event is
        # that text with its id and item put in. It costs a fifth of encoding each event, on a
        # thread that shares the GIL with serving. Ids of the id pattern need no JSON escaping;
        # any other id (possible in a model trained on free-form ids) is encoded in full.
        payload = {name: v for name in FIELD_NAMES if (v := getattr(first, name)) is not None}
        payload["event_id"], payload["item"] = _EID_MARK, _ITEM_MARK
        head, _, rest = orjson.dumps(payload).partition(_EID_MARK.encode())
        middle, _, tail = rest.partition(_ITEM_MARK.encode())
        head += self.recommendation_id.encode() + b"-"
        plain = _PLAIN_ID.fullmatch(self.recommendation_id) is not None
        if plain and all(map(_PLAIN_ID.fullmatch, self.items)):
            return [
                b"%s%d%s%s%s" % (head, rank, middle, item.encode(), tail)
                for rank, item in enumerate(self.items, start=1)
            ]
        out = []
        for rank, item in enumerate(self.items, start=1):
            payload["event_id"] = f"{self.recommendation_id}-{rank}"
            payload["item"] = item
            out.append(orjson.dumps(payload))
        return out

    def events(self) -> list[OutgoingEvent]:
        """``values`` as records keyed by the user (what a Kafka topic needs)."""
        return [
            OutgoingEvent(self.user, value, None, False, self.variant, "impression")
            for value in self.values()
        ]


def _build(batch: list[Shown], sink: EventSink) -> Batch:
    """The events of ``batch`` in the form ``sink`` takes, built a few answers at a time.

    Building a batch is pure Python under the GIL, which the sender shares with the request
    threads of its process: done in one go, it holds them off for up to the interpreter's switch
    interval (5 ms) at a time, many times over, and that lands in serving's tail latency. Giving
    the GIL back after every few answers keeps each hold to tens of microseconds. A landing
    directory takes the encoded lines as they are; a topic needs a keyed record per event.
    """
    lines = isinstance(sink, DirSink)
    out: list[Any] = []
    for i, shown in enumerate(batch, start=1):
        out.extend(shown.values() if lines else shown.events())
        if i % _ANSWERS_PER_SLICE == 0:
            time.sleep(0)  # let a waiting request thread run
    return Batch(out, lines)


@dataclass(slots=True)
class Batch:
    """Encoded lines for a ``DirSink``, or records for any other sink."""

    items: list[Any]
    lines: bool

    def __len__(self) -> int:
        return len(self.items)

    async def send(self, sink: EventSink) -> None:
        if self.lines:
            assert isinstance(sink, DirSink)
            await sink.send_lines(self.items)
        else:
            await sink.send(self.items)


class ImpressionLogger:
    """The bounded buffer and its sender thread (module docstring)."""

    def __init__(
        self,
        sink: EventSink,
        *,
        capacity: int,
        batch_size: int,
        flush_s: float,
        put_timeout_s: float = 0.0,
    ) -> None:
        if capacity < 1 or batch_size < 1:
            raise ValueError("capacity and batch_size must be at least 1")
        self.sink = sink
        self.capacity = capacity
        self.batch_size = batch_size
        self.flush_s = flush_s
        self.put_timeout_s = put_timeout_s
        self._buffer: deque[Shown] = deque()
        self._size = 0  # events in the buffer, those being sent included
        self._cond = threading.Condition()
        self._closing = False
        self._abandoned = (
            False  # close() gave up waiting: the sender's late results are not counted
        )
        self._thread: threading.Thread | None = None
        self._last_drop_log = 0.0
        self._unlogged_drops = 0
        # Counts of events: offered to the buffer, accepted, delivered to the sink, dropped.
        self.offered = 0
        self.accepted = 0
        self.delivered = 0
        self.dropped = 0
        self.last_error: str | None = None

    def describe(self) -> str:
        return self.sink.describe()

    @property
    def pending(self) -> int:
        """Events accepted and not yet delivered."""
        return self._size

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="impressions", daemon=True)
        self._thread.start()

    def log(self, answer: Mapping[str, Any], ts: int) -> bool:
        """Buffer the impressions of one answer (``RecommendationsOut``-shaped) shown at ``ts``
        (epoch ms); False when they were dropped for want of room."""
        items = [i["item"] for i in answer["items"]]
        k = len(items)
        if k == 0:
            return True
        shown = Shown(
            ts,
            answer["user"],
            items,
            answer["recommendation_id"],
            answer["model_version"],
            answer.get("experiment"),
            answer.get("variant"),
        )
        with self._cond:
            self.offered += k
            if self._size + k > self.capacity and self.put_timeout_s > 0 and not self._closing:
                self._cond.wait_for(
                    lambda: self._size + k <= self.capacity or self._closing, self.put_timeout_s
                )
            if self._closing or self._size + k > self.capacity:
                self._drop(k, "the buffer is full" if not self._closing else "shutting down")
                return False
            self._buffer.append(shown)
            self._size += k
            self.accepted += k
            if self._size >= self.batch_size:
                self._cond.notify_all()
        return True

    def _drop(self, k: int, why: str) -> None:
        # Called with the lock held.
        self.dropped += k
        DROPPED.inc(k)
        self._unlogged_drops += k
        now = time.monotonic()
        if now - self._last_drop_log >= _LOG_EVERY_S:
            log.warning(
                "impressions: dropped %d events (%s; %d dropped in all) sending to %s%s",
                self._unlogged_drops,
                why,
                self.dropped,
                self.sink.describe(),
                f"; last error: {self.last_error}" if self.last_error else "",
            )
            self._last_drop_log = now
            self._unlogged_drops = 0

    def _next_batch(self) -> list[Shown]:
        """Answers from the head of the buffer, up to ``batch_size`` events (at least one
        answer); they stay in the buffer until sent. Called with the lock held."""
        batch: list[Shown] = []
        n = 0
        for shown in self._buffer:
            if batch and n + len(shown.items) > self.batch_size:
                break
            batch.append(shown)
            n += len(shown.items)
        return batch

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        started = False
        failures = 0
        try:
            while True:
                with self._cond:
                    if not self._closing and self._size < self.batch_size:
                        self._cond.wait(self.flush_s)
                    batch = self._next_batch()
                    if not batch and self._closing:
                        return
                if not batch:
                    continue
                events = _build(batch, self.sink)
                try:
                    if not started:
                        loop.run_until_complete(self.sink.start())
                        started = True
                    loop.run_until_complete(events.send(self.sink))
                except Exception as exc:  # the sink's errors vary (Kafka, disk): retry them all
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    if failures == 0:
                        log.error("impressions: cannot send to %s (%s); retrying",
                                  self.sink.describe(), self.last_error)  # fmt: skip
                    wait = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                    failures += 1
                    with self._cond:
                        if self._closing:
                            return  # close() counts what is left as dropped
                        self._cond.wait(wait)
                    continue
                if failures:
                    log.info("impressions: sending to %s again", self.sink.describe())
                failures = 0
                self.last_error = None
                with self._cond:
                    if self._abandoned:
                        return
                    for _ in batch:
                        self._buffer.popleft()
                    self._size -= len(events)
                    self.delivered += len(events)
                    self._cond.notify_all()
                SENT.inc(len(events))
        finally:
            if started:
                try:
                    loop.run_until_complete(self.sink.stop())
                except Exception as exc:  # a sink that cannot close loses nothing more here
                    log.warning("impressions: closing %s failed: %r", self.sink.describe(), exc)
            loop.close()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop taking impressions, send what the buffer holds (for at most ``timeout_s``), and
        count what could not be sent as dropped."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._cond:
            self._abandoned = True
            if self._size:
                log.error(
                    "impressions: %d events could not be sent to %s before shutdown%s",
                    self._size,
                    self.sink.describe(),
                    f" ({self.last_error})" if self.last_error else "",
                )
                self._last_drop_log = time.monotonic()  # the line above says it
                self._drop(self._size, "unsent at shutdown")
                self._unlogged_drops = 0
                self._buffer.clear()
                self._size = 0


def from_settings(settings: Settings) -> ImpressionLogger | None:
    """The logger the settings ask for (not started), or None when impression logging is off."""
    if not settings.impressions_enabled:
        return None
    sink: EventSink
    if settings.kafka_bootstrap_servers:
        sink = KafkaSink(settings.kafka_bootstrap_servers, settings.kafka_topic)
    else:
        # One file per batch: a file the ingestion lists is whole, and impressions land within
        # about impressions_flush_s instead of when a large file fills.
        sink = DirSink(settings.landing_dir, prefix="impressions", flush_each_send=True)
    return ImpressionLogger(
        sink,
        capacity=settings.impressions_buffer,
        batch_size=settings.impressions_batch,
        flush_s=settings.impressions_flush_s,
        put_timeout_s=settings.impressions_put_timeout_ms / 1000,
    )
