"""The live monitor: an aiokafka consumer group loop feeding the sliding windows.

One loop consumes the interactions topic in batches (``getmany``), validates each record with the
shared contract (``validate_event``), updates the windows, and only then commits the batch's
offsets (manual commits). A second loop publishes a snapshot every ``snapshot_interval_s``: the
window summaries, totals, per-partition lag from the broker's end offsets, the monitor's state,
and evaluates the alert rules on it.

Restart semantics: the windows live in memory only. A (re)started monitor resumes each partition
from the group's committed offset and never re-reads events before it, so its windows start
empty and fill with the events it reads from there on (``coverage_s`` in each window says how
much of the span is covered). Because offsets are committed only after the events are counted,
an event is counted at most once in a monitor's windows: events after the last commit of a
crashed monitor are read again by the next one, whose windows did not hold them. Within one
process, records at offsets already counted (re-delivered after a rebalance or a failed commit)
are skipped and reported as ``redelivered_skipped``.

Faults: a record that fails the contract is counted by reason and skipped, never fatal. When the
broker cannot be reached (at start or later) the state becomes ``broker_unavailable`` with the
error, snapshots keep being published (so readiness can say so), and the connection is retried
with exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from backend.monitoring.alert_store import AlertStore
from backend.monitoring.alerts import (
    AlertBook,
    AlertRules,
    Condition,
    ctr_conditions,
    idle_condition,
    lag_condition,
)
from backend.monitoring.snapshots import SnapshotStore
from backend.monitoring.validation import Counted, Invalid, ParallelValidator, validate_batch
from backend.monitoring.windows import (
    DEFAULT_SPANS_S,
    SlidingWindows,
    histogram_quantile,
    latency_bin,
)
from backend.streaming.events import DEFAULT_RULES, ValidationRules, now_ms

log = logging.getLogger(__name__)

State = Literal["starting", "connecting", "running", "broker_unavailable", "stopped"]


@dataclass(frozen=True)
class MonitorOptions:
    """How the monitor consumes and publishes. Defaults suit one monitor per topic."""

    bootstrap_servers: str
    topic: str = "interactions"
    group_id: str = "recflow-monitor"
    spans_s: tuple[int, ...] = DEFAULT_SPANS_S
    top_k: int = 10
    snapshot_interval_s: float = 1.0
    # Small batches keep the snapshot loop on time (both loops share one event loop).
    max_batch: int = 2000
    poll_timeout_ms: int = 100
    # Where a group without committed offsets starts: "latest" watches live traffic only.
    auto_offset_reset: Literal["earliest", "latest"] = "latest"
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    request_timeout_s: float = 5.0
    rules: AlertRules = field(default_factory=AlertRules)
    validation: ValidationRules = DEFAULT_RULES
    # Processes that validate a share of each batch next to the event loop's own share. The
    # shared validator is pure Python (about 60 us per record), so one core tops out near 16k
    # events/s; 1 extra process uses the second core. 0 validates inline only.
    validate_workers: int = 0
    # Batches smaller than this are validated inline: shipping them costs more than it saves.
    parallel_min_batch: int = 256

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise ValueError(
                "the monitor needs Kafka: set RECFLOW_KAFKA_BOOTSTRAP_SERVERS (e.g. kafka:9092)"
            )
        if self.snapshot_interval_s <= 0:
            raise ValueError(f"snapshot_interval_s must be > 0, got {self.snapshot_interval_s}")
        if self.validate_workers < 0:
            raise ValueError(f"validate_workers must be >= 0, got {self.validate_workers}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")


@dataclass
class Totals:
    """Counters since the monitor started."""

    consumed: int = 0
    valid: int = 0
    invalid: int = 0
    invalid_by_reason: dict[str, int] = field(default_factory=dict)
    counted: int = 0
    late: int = 0
    future: int = 0
    without_experiment: int = 0
    redelivered_skipped: int = 0
    commits: int = 0
    commit_failures: int = 0
    publish_failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "consumed": self.consumed,
            "valid": self.valid,
            "invalid": self.invalid,
            "invalid_by_reason": dict(sorted(self.invalid_by_reason.items())),
            "counted": self.counted,
            "late": self.late,
            "future": self.future,
            "without_experiment": self.without_experiment,
            "redelivered_skipped": self.redelivered_skipped,
            "commits": self.commits,
            "commit_failures": self.commit_failures,
            "publish_failures": self.publish_failures,
        }


@dataclass(frozen=True)
class Record:
    """The part of a Kafka record the monitor reads (aiokafka's ``ConsumerRecord`` fits)."""

    offset: int
    value: bytes | None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, monitor: Monitor, consumer: AIOKafkaConsumer) -> None:
        self.monitor = monitor
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        # Commit what was counted before another member takes the partitions over.
        await self.monitor._commit(self.consumer)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        log.info("monitor assigned partitions %s", sorted(tp.partition for tp in assigned))


class Monitor:
    """Consume, aggregate, commit, publish. ``run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        options: MonitorOptions,
        store: SnapshotStore,
        alerts: AlertStore | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.options = options
        self.store = store
        self.alerts = alerts
        self.clock = clock
        self.started_ms = clock()
        self.windows = SlidingWindows(
            start_ms=self.started_ms, spans_s=options.spans_s, top_k=options.top_k
        )
        self.totals = Totals()
        self.state: State = "starting"
        self.error: str | None = None
        self.connect_attempts = 0
        self.next_offset: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self._uncommitted: dict[TopicPartition, int] = {}
        self.lag: dict[int, dict[str, int | None]] = {}
        self.lag_total: int | None = None
        self.lag_error: str | None = None
        self.last_event_ms: int | None = None
        self.book = AlertBook()
        self.snapshots_published = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._pending_ts: list[int] = []
        self._freshness: dict[int, int] = {}
        self._last_publish = (time.monotonic(), 0)
        self._validator: ParallelValidator | None = None

    # ---- aggregation (no I/O) -------------------------------------------------------------

    def process(
        self, batch: Mapping[TopicPartition, Sequence[Record]], processed_ms: int
    ) -> dict[TopicPartition, int]:
        """Validate and count one batch; returns the offsets to commit (next offset per
        partition). Records below the offset already counted for their partition are skipped."""
        located, raws = self.fresh_records(batch)
        checked = validate_batch(raws, processed_ms, self.options.validation)
        return self.count(batch, located, checked, processed_ms)

    def count(
        self,
        batch: Mapping[TopicPartition, Sequence[Record]],
        located: Sequence[tuple[TopicPartition, int]],
        checked: tuple[list[Counted], list[Invalid]],
        processed_ms: int,
    ) -> dict[TopicPartition, int]:
        """Count validated records (``checked`` is the validation of ``fresh_records(batch)``,
        ``located`` their places) and return the offsets to commit."""
        valid, invalid = checked
        totals = self.totals
        totals.consumed += len(located)
        for index, reason, message in invalid:
            self._rejected(located[index], reason, message)
        to_commit: dict[TopicPartition, int] = {}
        for tp, records in batch.items():
            done = self.next_offset.get(tp, -1)
            if records and records[-1].offset + 1 > done:
                self.next_offset[tp] = to_commit[tp] = records[-1].offset + 1
        self.windows.advance(processed_ms)
        placed = self.windows.add_many(valid, processed_ms)
        totals.valid += len(valid)
        totals.counted += placed.counted
        totals.future += placed.future
        totals.late += placed.late
        totals.without_experiment += placed.without_experiment
        if valid:
            self.last_event_ms = processed_ms
            self._pending_ts.extend(e.ts for e in valid)
        self._uncommitted.update(to_commit)
        return to_commit

    def fresh_records(
        self, batch: Mapping[TopicPartition, Sequence[Record]]
    ) -> tuple[list[tuple[TopicPartition, int]], list[bytes | None]]:
        """The records of a batch not yet counted, as (partition, offset) and raw values.

        Records below the partition's counted offset are skipped and counted as
        ``redelivered_skipped``; call once per batch."""
        located: list[tuple[TopicPartition, int]] = []
        raws: list[bytes | None] = []
        for tp, records in batch.items():
            done = self.next_offset.get(tp, -1)
            for rec in records:
                if rec.offset < done:
                    self.totals.redelivered_skipped += 1
                    continue
                located.append((tp, rec.offset))
                raws.append(rec.value)
        return located, raws

    def _rejected(self, where: tuple[TopicPartition, int], reason: str, message: str) -> None:
        tp, offset = where
        totals = self.totals
        totals.invalid += 1
        n = totals.invalid_by_reason.get(reason, 0) + 1
        totals.invalid_by_reason[reason] = n
        # Logged, but at a bounded rate: a flood of bad records must not flood the log.
        if n <= 10 or n % 10_000 == 0:
            log.warning(
                "skipped record %s[%d]@%d (%s, %d so far): %s",
                tp.topic,
                tp.partition,
                offset,
                reason,
                n,
                message,
            )

    def snapshot(self, at_ms: int) -> dict[str, Any]:
        """The JSON snapshot published for readers (see ``docs`` in the API route)."""
        now_mono, consumed_then = self._last_publish
        elapsed = max(time.monotonic() - now_mono, 1e-6)
        idle_from = self.last_event_ms if self.last_event_ms is not None else self.started_ms
        return {
            "version": 1,
            "generated_at_ms": at_ms,
            "generated_at": datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(),
            "monitor": {
                "state": self.state,
                "ready": self.state == "running" and self.lag_error is None,
                "error": self.error or self.lag_error,
                "topic": self.options.topic,
                "group": self.options.group_id,
                "started_at_ms": self.started_ms,
                "connect_attempts": self.connect_attempts,
                "last_event_ms": self.last_event_ms,
                "idle_s": round(max(0, at_ms - idle_from) / 1000, 3),
                "snapshot_interval_s": self.options.snapshot_interval_s,
            },
            "totals": self.totals.to_dict(),
            "lag": {
                "total": self.lag_total,
                "error": self.lag_error,
                "partitions": [
                    {"partition": p, **v} for p, v in sorted(self.lag.items(), key=lambda x: x[0])
                ],
            },
            "processing": {
                "events_per_s": round((self.totals.consumed - consumed_then) / elapsed, 3),
                "freshness_p50_s": histogram_quantile(self._freshness, 0.5),
                "freshness_p99_s": histogram_quantile(self._freshness, 0.99),
                "freshness_samples": sum(self._freshness.values()),
            },
            "windows": {name: s.to_dict() for name, s in self.windows.summaries().items()},
            "alerts_open": [
                {"id": i, "rule": rule, "labels": dict(labels)}
                for (rule, labels), i in sorted(self.book.open.items())
            ],
        }

    def conditions(self, snap: Mapping[str, Any]) -> list[Condition]:
        """Every alert rule's condition on a snapshot."""
        rules = self.options.rules
        topic = self.options.topic
        return [
            *ctr_conditions(snap["windows"], rules),
            lag_condition(topic, snap["lag"]["total"], rules),
            idle_condition(topic, snap["monitor"]["idle_s"], rules),
        ]

    # ---- I/O ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and publish until ``stop`` is set; then commit, publish a last snapshot
        (state ``stopped``) and return."""
        if self.alerts is not None:
            self.book.open.update(await asyncio.to_thread(self.alerts.load_open))
        if self.options.validate_workers:
            self._validator = ParallelValidator(
                self.options.validate_workers,
                self.options.validation,
                self.options.parallel_min_batch,
            )
        publisher = asyncio.create_task(self._publish_loop(stop), name="monitor-publish")
        try:
            await self._consume_loop(stop)
        finally:
            stop.set()
            await publisher
            self.state = "stopped"
            await self.publish()
            if self._validator is not None:
                self._validator.close()
                self._validator = None

    async def _consume_loop(self, stop: asyncio.Event) -> None:
        opts = self.options
        backoff = opts.backoff_initial_s
        while not stop.is_set():
            consumer = AIOKafkaConsumer(
                bootstrap_servers=opts.bootstrap_servers,
                group_id=opts.group_id,
                client_id=f"recflow-monitor-{opts.group_id}",
                enable_auto_commit=False,
                auto_offset_reset=opts.auto_offset_reset,
                request_timeout_ms=int(opts.request_timeout_s * 1000),
                retry_backoff_ms=200,
                max_partition_fetch_bytes=4 * 1024 * 1024,
            )
            self.connect_attempts += 1
            if self.state != "broker_unavailable":
                self.state = "connecting"
            try:
                await consumer.start()
                consumer.subscribe([opts.topic], listener=_Listener(self, consumer))
                self._consumer = consumer
                self.state, self.error, backoff = "running", None, opts.backoff_initial_s
                log.info("monitor consuming %s as group %s", opts.topic, opts.group_id)
                while not stop.is_set():
                    batch = await consumer.getmany(
                        timeout_ms=opts.poll_timeout_ms, max_records=opts.max_batch
                    )
                    if batch:
                        located, raws = self.fresh_records(batch)
                        at = self.clock()
                        if self._validator is not None:
                            checked = await self._validator.validate(raws, at)
                        else:
                            checked = validate_batch(raws, at, opts.validation)
                        self.count(batch, located, checked, at)
                        await self._commit(consumer)
                await self._commit(consumer)
            except KafkaError as exc:
                self.state = "broker_unavailable"
                self.error = (
                    f"cannot use Kafka at {opts.bootstrap_servers} "
                    f"({type(exc).__name__}: {exc}); retrying in {backoff:.1f} s"
                )
                log.warning("monitor: %s", self.error)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, opts.backoff_max_s)
            finally:
                self._consumer = None
                try:
                    await consumer.stop()
                except KafkaError as exc:
                    log.warning("monitor: closing the consumer failed: %s", exc)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit every counted-but-uncommitted offset; a failure is retried with the next batch."""
        if not self._uncommitted:
            return
        offsets = {tp: off for tp, off in self._uncommitted.items() if tp in consumer.assignment()}
        if not offsets:
            self._uncommitted.clear()
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            self.totals.commit_failures += 1
            log.warning(
                "monitor: committing offsets failed (%s: %s); retrying with the next batch",
                type(exc).__name__,
                exc,
            )
            return
        self.totals.commits += 1
        self.committed.update(offsets)
        for tp, off in offsets.items():
            if self._uncommitted.get(tp) == off:
                del self._uncommitted[tp]

    async def _publish_loop(self, stop: asyncio.Event) -> None:
        interval = self.options.snapshot_interval_s
        while not stop.is_set():
            t0 = time.monotonic()
            await self._refresh_lag()
            await self.publish()
            await _wait(stop, max(0.0, interval - (time.monotonic() - t0)))

    async def _refresh_lag(self) -> None:
        consumer = self._consumer
        if consumer is None:
            self.lag_total = None
            return
        parts = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        if not parts:
            self.lag, self.lag_total, self.lag_error = {}, None, None
            return
        try:
            ends: dict[TopicPartition, int] = await asyncio.wait_for(
                consumer.end_offsets(parts), self.options.request_timeout_s
            )
            lag: dict[int, dict[str, int | None]] = {}
            for tp in parts:
                known = self.next_offset.get(tp)
                pos: int = (
                    known
                    if known is not None
                    else await asyncio.wait_for(consumer.position(tp), 1.0)
                )
                lag[tp.partition] = {
                    "position": pos,
                    "committed": self.committed.get(tp),
                    "end": ends[tp],
                    "lag": max(0, ends[tp] - pos),
                }
        except (KafkaError, TimeoutError) as exc:
            self.lag_error = (
                f"cannot read end offsets from Kafka at {self.options.bootstrap_servers} "
                f"({type(exc).__name__}: {exc or 'timed out'})"
            )
            self.lag_total = None
            log.warning("monitor: %s", self.lag_error)
            return
        self.lag = lag
        self.lag_total = sum(v["lag"] or 0 for v in lag.values())
        self.lag_error = None

    async def publish(self) -> None:
        """Build, store and alert on one snapshot. A store failure is logged and counted."""
        at = self.clock()
        self.windows.advance(at)
        snap = self.snapshot(at)
        pending, self._pending_ts = self._pending_ts, []
        self._last_publish = (time.monotonic(), self.totals.consumed)
        try:
            await asyncio.to_thread(self.store.put, snap)
        except Exception as exc:  # a store outage must not stop the monitor; it is reported
            self.totals.publish_failures += 1
            log.warning("monitor: publishing the snapshot failed: %s: %s", type(exc).__name__, exc)
            return
        self.snapshots_published += 1
        done = self.clock()
        fresh = self._freshness
        for ts in pending:
            b = latency_bin((done - ts) / 1000)
            fresh[b] = fresh.get(b, 0) + 1
        await self._alert(snap)

    async def _alert(self, snap: Mapping[str, Any]) -> None:
        if self.alerts is None or self.state == "stopped":
            return
        store = self.alerts
        todo = self.book.transitions(self.conditions(snap))
        for cond in todo.fire:
            try:
                self.book.opened(cond.key, await asyncio.to_thread(store.fire, cond))
            except Exception as exc:  # the database may be briefly down: retried next snapshot
                log.warning("monitor: storing alert %s failed: %s", cond.key, exc)
        for key, alert_id in todo.resolve:
            try:
                await asyncio.to_thread(store.resolve, alert_id)
                self.book.resolved(key)
            except Exception as exc:
                log.warning("monitor: resolving alert %d failed: %s", alert_id, exc)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set, whichever comes first."""
    if seconds <= 0:
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
