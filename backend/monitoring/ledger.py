"""What the live monitor has counted: its windows, its totals, and the offsets behind them.

Pure state, no I/O and no clock of its own: the consumer loop (``backend.monitoring.consumer``)
and the landing-directory monitor (``backend.monitoring.landing``) feed it batches of records and
the time they were processed, and report back which offsets the broker accepted.

Exactly-once bookkeeping: ``next_offset`` is, per partition, the offset after the last record
counted. A record below it was counted already (re-delivered after a rebalance or a failed
commit) and is skipped as ``redelivered_skipped``. Counted offsets wait in ``uncommitted`` until
the loop commits them, so a monitor never commits an offset whose events it has not counted.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Final, NamedTuple

import numpy as np

from backend.monitoring.counts import bin_counts, latency_bins
from backend.monitoring.validation import Invalid, validate_batch
from backend.monitoring.windows import DEFAULT_SPANS_S, EventLike, SlidingWindows
from backend.streaming.events import DEFAULT_RULES, ValidationRules

log = logging.getLogger(__name__)

_TS: Final = attrgetter("ts")
_VALUE: Final = attrgetter("value")


class Partition(NamedTuple):
    """A topic partition. aiokafka's ``TopicPartition`` is the same named tuple, so either one
    keys the same entry of the offsets maps."""

    topic: str
    partition: int


@dataclass(frozen=True)
class Record:
    """The part of a record the monitor reads (aiokafka's ``ConsumerRecord`` fits)."""

    offset: int
    value: bytes | None


@dataclass
class Totals:
    """Counters since the monitor started; the fields are their JSON in the snapshot."""

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


Batch = Mapping[Partition, Sequence[Record]]


class Located:
    """Where each record of a batch's fresh records came from, kept per partition run: the
    place of a record is only looked up for the few that fail validation."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._runs: list[tuple[Partition, Sequence[Record]]] = []
        self._size = 0

    def add(self, tp: Partition, records: Sequence[Record], start: int) -> None:
        """Records ``start``, ``start + 1``, ... are ``records`` of partition ``tp``."""
        if records:
            self._starts.append(start)
            self._runs.append((tp, records))
            self._size = start + len(records)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int) -> tuple[Partition, int]:
        """The partition and offset of fresh record ``index``."""
        run = bisect_right(self._starts, index) - 1
        if not 0 <= index < self._size or run < 0:
            raise IndexError(index)
        tp, records = self._runs[run]
        return tp, records[index - self._starts[run]].offset


class Ledger:
    """Count batches into sliding windows and keep the per-partition offsets exactly-once
    counting needs (see the module docstring)."""

    def __init__(
        self,
        start_ms: int,
        spans_s: tuple[int, ...] = DEFAULT_SPANS_S,
        top_k: int = 10,
        rules: ValidationRules = DEFAULT_RULES,
    ) -> None:
        self.rules = rules
        self.windows = SlidingWindows(start_ms=start_ms, spans_s=spans_s, top_k=top_k)
        self.totals = Totals()
        self.next_offset: dict[Partition, int] = {}
        self.committed: dict[Partition, int] = {}
        self.uncommitted: dict[Partition, int] = {}
        self.last_event_ms: int | None = None
        #: Event times counted since the last published snapshot, for its freshness.
        self.pending_ts: list[int] = []
        #: Event time to published snapshot, as a sparse latency histogram ``{bin: count}``.
        self.freshness: dict[int, int] = {}

    def process(self, batch: Batch, processed_ms: int) -> dict[Partition, int]:
        """Validate and count one batch; returns the offsets to commit (next offset per
        partition). Records below the offset already counted for their partition are skipped."""
        located, raws = self.fresh_records(batch)
        checked = validate_batch(raws, processed_ms, self.rules)
        return self.count(batch, located, checked, processed_ms)

    def fresh_records(self, batch: Batch) -> tuple[Located, list[bytes | None]]:
        """The records of a batch not yet counted, as their places and raw values.

        Records below the partition's counted offset are skipped and counted as
        ``redelivered_skipped``; call once per batch."""
        located = Located()
        raws: list[bytes | None] = []
        for tp, records in batch.items():
            if not records:
                continue
            done = self.next_offset.get(tp, -1)
            if records[0].offset < done:
                fresh = [rec for rec in records if rec.offset >= done]
                self.totals.redelivered_skipped += len(records) - len(fresh)
                records = fresh
            located.add(tp, records, len(raws))
            raws.extend(map(_VALUE, records))
        return located, raws

    def count(
        self,
        batch: Batch,
        located: Located,
        checked: tuple[Sequence[EventLike], list[Invalid]],
        processed_ms: int,
    ) -> dict[Partition, int]:
        """Count validated records (``checked`` is the validation of ``fresh_records(batch)``,
        ``located`` their places) and return the offsets to commit."""
        valid, invalid = checked
        totals = self.totals
        totals.consumed += len(located)
        for index, reason, message in invalid:
            self._rejected(located[index], reason, message)
        to_commit: dict[Partition, int] = {}
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
            self.pending_ts.extend(map(_TS, valid))
        self.uncommitted.update(to_commit)
        return to_commit

    def _rejected(self, where: tuple[Partition, int], reason: str, message: str) -> None:
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

    def offsets_to_commit(self, assigned: Collection[Partition]) -> dict[Partition, int]:
        """The counted offsets not yet committed on the partitions this member still holds.

        When it holds none of them they are dropped: another member owns those partitions
        now and resumes from their last committed offset."""
        offsets = {tp: off for tp, off in self.uncommitted.items() if tp in assigned}
        if not offsets:
            self.uncommitted.clear()
        return offsets

    def commit_failed(self) -> None:
        """A commit the broker refused: the offsets stay uncommitted for the next attempt."""
        self.totals.commit_failures += 1

    def commit_done(self, offsets: Mapping[Partition, int]) -> None:
        """The broker accepted ``offsets``; offsets counted since then stay uncommitted."""
        self.totals.commits += 1
        self.committed.update(offsets)
        for tp, off in offsets.items():
            if self.uncommitted.get(tp) == off:
                del self.uncommitted[tp]

    def take_pending(self) -> list[int]:
        """The event times counted since the last call (the next snapshot's freshness)."""
        pending, self.pending_ts = self.pending_ts, []
        return pending

    def record_freshness(self, event_ts: Sequence[int], published_ms: int) -> None:
        """Add ``published_ms - ts`` of each event time to the freshness histogram."""
        if not event_ts:
            return
        fresh = self.freshness
        ages = published_ms - np.asarray(event_ts, dtype=np.int64)
        for b, n in bin_counts(latency_bins(ages)).items():
            fresh[b] = fresh.get(b, 0) + n
