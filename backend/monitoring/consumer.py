"""The live monitor: an aiokafka consumer group loop around the monitor's ledger.

One loop consumes the interactions topic in batches (``getmany``), validates each record with the
shared contract (``validate_event``'s decisions, through the fast path of
``backend.streaming.fastpath``), counts it into the ledger's windows (``backend.monitoring.ledger``,
pure state), and only then commits the batch's offsets (manual commits; after a full batch at
most every ``commit_interval_s``). A second loop publishes a snapshot
(``backend.monitoring.published``) every ``snapshot_interval_s``: the window summaries, totals,
per-partition lag from the broker's end offsets, the monitor's state; and evaluates the alert
rules on it.

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
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from backend.jsonable import to_jsonable
from backend.monitoring.alert_store import AlertStore
from backend.monitoring.alerts import (
    AlertBook,
    Condition,
    ctr_conditions,
    idle_condition,
    lag_condition,
)
from backend.monitoring.ledger import Ledger, Partition, Record, Totals
from backend.monitoring.options import MonitorOptions
from backend.monitoring.published import (
    SNAPSHOT_VERSION,
    LagReading,
    MonitorStatus,
    PartitionLag,
    Processing,
    Snapshot,
    open_alerts,
    totals_view,
)
from backend.monitoring.snapshots import SnapshotStore
from backend.monitoring.validation import ParallelValidator, validate_batch
from backend.monitoring.windows import SlidingWindows, histogram_quantile
from backend.streaming.events import now_ms

__all__ = ["Monitor", "MonitorOptions", "Record", "State"]

log = logging.getLogger(__name__)

State = Literal["starting", "connecting", "running", "broker_unavailable", "stopped"]


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
    """Consume, count, commit, publish. ``run(stop)`` until ``stop`` is set.

    What was counted lives in ``ledger``; the monitor adds the connection state, the lag read
    from the broker, the open alerts and the snapshots it publishes.
    """

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
        self.ledger = Ledger(
            self.started_ms, options.spans_s, options.top_k, rules=options.validation
        )
        self.state: State = "starting"
        self.error: str | None = None
        self.connect_attempts = 0
        self.lag: dict[int, PartitionLag] = {}
        self.lag_total: int | None = None
        self.lag_error: str | None = None
        self.book = AlertBook()
        self.snapshots_published = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._last_publish = (time.monotonic(), 0)
        self._validator: ParallelValidator | None = None

    @property
    def totals(self) -> Totals:
        """The ledger's counters since the monitor started."""
        return self.ledger.totals

    @property
    def windows(self) -> SlidingWindows:
        """The ledger's sliding windows."""
        return self.ledger.windows

    @property
    def committed(self) -> dict[Partition, int]:
        """The offsets the broker accepted, per partition."""
        return self.ledger.committed

    def process(
        self, batch: Mapping[Partition, Sequence[Record]], processed_ms: int
    ) -> dict[Partition, int]:
        """Validate and count one batch (see :meth:`Ledger.process`); returns the offsets to
        commit."""
        return self.ledger.process(batch, processed_ms)

    def snapshot(self, at_ms: int) -> dict[str, Any]:
        """The JSON snapshot published for readers (see ``backend.monitoring.published``)."""
        since, consumed_then = self._last_publish
        elapsed = max(time.monotonic() - since, 1e-6)
        ledger = self.ledger
        last_event = ledger.last_event_ms
        idle_from = last_event if last_event is not None else self.started_ms
        freshness = ledger.freshness
        snapshot = Snapshot(
            version=SNAPSHOT_VERSION,
            generated_at_ms=at_ms,
            generated_at=datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(),
            monitor=MonitorStatus(
                state=self.state,
                ready=self.state == "running" and self.lag_error is None,
                error=self.error or self.lag_error,
                topic=self.options.topic,
                group=self.options.group_id,
                started_at_ms=self.started_ms,
                connect_attempts=self.connect_attempts,
                last_event_ms=last_event,
                idle_s=round(max(0, at_ms - idle_from) / 1000, 3),
                snapshot_interval_s=self.options.snapshot_interval_s,
            ),
            totals=totals_view(ledger.totals),
            lag=LagReading(
                total=self.lag_total,
                error=self.lag_error,
                partitions=tuple(self.lag[p] for p in sorted(self.lag)),
            ),
            processing=Processing(
                events_per_s=round((ledger.totals.consumed - consumed_then) / elapsed, 3),
                freshness_p50_s=histogram_quantile(freshness, 0.5),
                freshness_p99_s=histogram_quantile(freshness, 0.99),
                freshness_samples=sum(freshness.values()),
            ),
            windows=ledger.windows.summaries(),
            alerts_open=open_alerts(self.book.open),
        )
        result: dict[str, Any] = to_jsonable(snapshot)
        return result

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
            await self._validator.start()
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
        ledger = self.ledger
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
                last_commit = time.monotonic()
                while not stop.is_set():
                    batch = await consumer.getmany(
                        timeout_ms=opts.poll_timeout_ms, max_records=opts.max_batch
                    )
                    if batch:
                        located, raws = ledger.fresh_records(batch)
                        at = self.clock()
                        if self._validator is not None:
                            checked = await self._validator.validate(raws, at)
                        else:
                            checked = validate_batch(raws, at, opts.validation)
                        ledger.count(batch, located, checked, at)
                        full = sum(map(len, batch.values())) >= opts.max_batch
                        if not full or time.monotonic() - last_commit >= opts.commit_interval_s:
                            await self._commit(consumer)
                            last_commit = time.monotonic()
                    elif ledger.uncommitted:
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
        ledger = self.ledger
        if not ledger.uncommitted:
            return
        offsets = ledger.offsets_to_commit(consumer.assignment())
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            ledger.commit_failed()
            log.warning(
                "monitor: committing offsets failed (%s: %s); retrying with the next batch",
                type(exc).__name__,
                exc,
            )
            return
        ledger.commit_done(offsets)

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
        next_offset, committed = self.ledger.next_offset, self.ledger.committed
        try:
            ends: dict[TopicPartition, int] = await asyncio.wait_for(
                consumer.end_offsets(parts), self.options.request_timeout_s
            )
            lag: dict[int, PartitionLag] = {}
            for tp in parts:
                known = next_offset.get(tp)
                pos: int = (
                    known
                    if known is not None
                    else await asyncio.wait_for(consumer.position(tp), 1.0)
                )
                lag[tp.partition] = PartitionLag(
                    partition=tp.partition,
                    position=pos,
                    committed=committed.get(tp),
                    end=ends[tp],
                    lag=max(0, ends[tp] - pos),
                )
        except (KafkaError, TimeoutError) as exc:
            self.lag_error = (
                f"cannot read end offsets from Kafka at {self.options.bootstrap_servers} "
                f"({type(exc).__name__}: {exc or 'timed out'})"
            )
            self.lag_total = None
            log.warning("monitor: %s", self.lag_error)
            return
        self.lag = lag
        self.lag_total = sum(v.lag for v in lag.values())
        self.lag_error = None

    async def publish(self) -> None:
        """Build, store and alert on one snapshot. A store failure is logged and counted."""
        ledger = self.ledger
        at = self.clock()
        ledger.windows.advance(at)
        snap = self.snapshot(at)
        pending = ledger.take_pending()
        self._last_publish = (time.monotonic(), ledger.totals.consumed)
        try:
            await asyncio.to_thread(self.store.put, snap)
        except Exception as exc:  # a store outage must not stop the monitor; it is reported
            ledger.totals.publish_failures += 1
            log.warning("monitor: publishing the snapshot failed: %s: %s", type(exc).__name__, exc)
            return
        self.snapshots_published += 1
        ledger.record_freshness(pending, self.clock())
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
