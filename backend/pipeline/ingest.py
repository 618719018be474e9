"""Structured Streaming ingestion: raw events (Kafka or landing files) -> Parquet lake + quarantine.

The pipeline, identical for both sources::

    source (value, source_ref)
      -> contract v1 validation in Spark SQL (backend.pipeline.validation): reason, typed columns
         (the checks against the clock after ingested_at = micro-batch timestamp, added behind
         a code generation boundary so that the generated code is the same in every batch)
      -> dropDuplicatesWithinWatermark(event_id), watermark on ingested_at
      -> foreachBatch: valid rows -> lake/events/dt=<event date>/,
                       rejected rows -> lake/quarantine/dt=<ingest date>/

Exactly once
------------
Spark gives at-least-once delivery of each micro-batch to ``foreachBatch``: a batch is planned
from offsets written to the checkpoint's offset log *before* it runs, and is marked done in the
commit log only *after* ``foreachBatch`` returns. A crash in between replays the same batch (the
same offsets, the same batch timestamp, the dedupe state as of the previous batch) on restart.
The writer makes that replay a no-op:

1. It writes the batch to ``lake/_staging/<query>/<batch>/`` (invisible to readers).
2. Under the lake lock it moves each date partition of the batch into the lake with one
   directory rename to ``dt=<date>/batch-<query>-<batch>/``. A rename is atomic, so each such
   directory is either absent or complete; one that already exists (from an attempt that crashed
   half-way through publishing) is kept and its staged copy discarded.
3. It writes the commit marker ``lake/_batches/<query>/<batch>.json``. A replayed batch whose
   marker exists is skipped entirely.

Hence after any crash and restart every batch's rows are in the lake exactly once. ``<query>`` is
the id Spark stores in the checkpoint, so starting over with a fresh checkpoint cannot be confused
with a replay. The one gap: two records with the same ``event_id`` but different event dates,
whose batch crashed half-way through publishing, may be resolved to different copies by the two
attempts and then both land; producers that resend identical records (retries) are unaffected.

Dedupe
------
The watermark is on ``ingested_at`` (processing time), not on the event time: an event-time
watermark would drop valid events that arrive later than the delay (a replay of old ratings,
a slow partition), while duplicates are in practice retries, close together in arrival time. So an
``event_id`` seen again within ``dedupe_watermark`` of ingestion time is dropped and counted.
Rejected records get a unique key (their source position) so they all reach the quarantine.

Counts
------
Each batch is counted once from the persisted batch (valid and quarantined by reason); rows in
and durations come from the query's progress reports; duplicates = rows in - valid - quarantined.
No second pass over the source.

Restarts
--------
With a ``local[N]`` master Spark does not retry a failed task, and its Kafka offset reader gives
up after a few attempts: a broker that restarts mid-run fails the query. Such a failure (a Kafka
timeout or disconnection, see ``is_transient_source_error``) restarts the query from the same
checkpoint once ``check_source`` passes again; the batch that was running is replayed, which the
exactly-once protocol above makes safe. Counts are kept per batch id across the restarts, so a
replayed batch is counted once. Any other failure ends the run at once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.lake import layout
from backend.pipeline.sources import EventSource, SourceUnavailableError, check_source, read_stream
from backend.pipeline.validation import with_validation
from backend.streaming.events import DEFAULT_RULES, FIELD_NAMES, REASONS, ValidationRules

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

#: ``on_stage(name, rows_in, rows_out, extra)``: called once per micro-batch (name ``batch-<id>``).
StageCallback = Callable[[str, int, int, dict[str, Any]], None]

_RAW_LIMIT = 1 << 20  # characters of a rejected record kept in the quarantine
_UNIQUE_COLUMNS = ("event_id", "source_ref", "raw")
_ID_COLUMNS = ("user", "item")
_MAX_BACKOFF_S = 30.0

log = logging.getLogger(__name__)

#: Failures of the Kafka source that end once the broker is back: the broker was restarting or
#: unreachable. Spark reports them from the driver (planning a batch: "Timed out waiting for a
#: node assignment") or from a task, in which case the text comes wrapped in the Python
#: traceback of ``foreachBatch`` (the batch's Spark jobs run from there).
_TRANSIENT_SOURCE_ERROR = re.compile(
    r"org\.apache\.kafka\.common\.errors\.(?:"
    r"TimeoutException|DisconnectException|NetworkException|BrokerNotAvailableException"
    r"|LeaderNotAvailableException|NotLeaderOrFollowerException|UnknownTopicOrPartitionException"
    r"|CoordinatorNotAvailableException|NotCoordinatorException)\b"
    r"|Timed out waiting for a node assignment"
    r"|Cannot fetch record for offset -?\d+ in \d+ milliseconds"
)


class IngestError(RuntimeError):
    """The streaming query failed; the message carries Spark's reason."""


@dataclass(frozen=True)
class IngestOptions:
    """What to ingest, where to, and the tuning knobs (each can be switched off to measure it).

    ``checkpoint_root`` holds one checkpoint per source (``<root>/<source.key>``); the same
    source must always use the same one. ``dedupe_watermark`` is how long (in ingestion time) an
    ``event_id`` is remembered. ``repartition_by_date`` shuffles each batch by event date before
    writing, so a batch writes one file per date instead of one per shuffle partition and date
    (with shuffle partitions sized to the cores, that is at most a few; with Spark's default of
    200 it is the small-file explosion). ``cache_batches`` persists a batch that will be read
    twice (valid rows, then rejected rows) instead of recomputing it from the source; a batch is
    taken to have rejected rows when the previous one had. ``fast_validation`` reads
    canonically shaped records without a VARIANT parse, with the JVM parser of
    ``backend.pipeline.native`` when ``native_validation`` (and the session has it), else with
    a regex and ``from_json`` (``validation.with_validation``). ``id_dictionaries`` writes
    ``user`` and ``item`` with Parquet dictionaries: off by default, because with many distinct
    ids building them took about a tenth of the ingestion time (1M events, 100k users), for
    files about a tenth smaller; ``recflow lake compact`` writes dictionaries for every column.
    ``trigger_interval`` is the micro-batch period when following. ``grace_s`` is how long a
    stop waits for the running batch to finish.

    A query that fails because the source went away for a while (``is_transient_source_error``)
    is restarted from its checkpoint. ``max_restarts`` is how many times in a row that is done
    without a micro-batch completing in between (0: never). Before the n-th restart in a row the
    run waits ``restart_backoff_s * 2 ** (n - 1)`` seconds (at most 30), then retries
    ``check_source`` with the same growing pause until it passes or ``source_wait_s`` has gone by.
    """

    source: EventSource
    lake_dir: Path
    checkpoint_root: Path
    rules: ValidationRules = DEFAULT_RULES
    dedupe_watermark: timedelta = timedelta(hours=1)
    repartition_by_date: bool = False
    cache_batches: bool = True
    fast_validation: bool = True
    native_validation: bool = True
    id_dictionaries: bool = False
    trigger_interval: timedelta = timedelta(seconds=5)
    grace_s: float = 60.0
    poll_s: int = 1
    max_restarts: int = 5
    restart_backoff_s: float = 1.0
    source_wait_s: float = 120.0

    @property
    def checkpoint_dir(self) -> Path:
        return self.checkpoint_root / self.source.key


@dataclass(frozen=True)
class BatchStats:
    """One micro-batch: rows read, rows written, rows dropped, and Spark's timings for it."""

    batch_id: int
    rows_in: int
    valid: int
    quarantined: dict[str, int]
    duplicates: int
    duration_ms: int
    replayed: bool
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    """Totals of one ingestion run (availableNow, or follow until stopped).

    ``restarts`` is how many times the query was restarted after a transient source failure;
    each batch is counted once however many attempts it took.
    """

    source: str
    query_id: str
    rows_in: int
    valid: int
    quarantined: dict[str, int]
    duplicates: int
    batches: int
    duration_s: float
    batch_stats: tuple[BatchStats, ...]
    restarts: int = 0

    @classmethod
    def from_batches(
        cls,
        source: str,
        query_id: str,
        batches: list[BatchStats],
        duration_s: float,
        restarts: int = 0,
    ) -> IngestResult:
        """The totals of ``batches``, one per batch id (a later entry for an id replaces one
        before it: the same batch, run again)."""
        by_id = {b.batch_id: b for b in batches}
        stats = [by_id[b] for b in sorted(by_id)]
        quarantined: dict[str, int] = {}
        for batch in stats:
            for reason, n in batch.quarantined.items():
                quarantined[reason] = quarantined.get(reason, 0) + n
        return cls(
            source=source,
            query_id=query_id,
            rows_in=sum(b.rows_in for b in stats),
            valid=sum(b.valid for b in stats),
            quarantined=dict(sorted(quarantined.items())),
            duplicates=sum(b.duplicates for b in stats),
            batches=len(stats),
            duration_s=duration_s,
            batch_stats=tuple(stats),
            restarts=restarts,
        )

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def events_per_s(self) -> float:
        """Rows in per second of wall time of the run (start of the query to its end)."""
        return self.rows_in / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without the per-batch details)."""
        return {
            "source": self.source,
            "query_id": self.query_id,
            "rows_in": self.rows_in,
            "valid": self.valid,
            "quarantined": dict(self.quarantined),
            "quarantined_total": self.quarantined_total,
            "duplicates": self.duplicates,
            "batches": self.batches,
            "restarts": self.restarts,
            "duration_s": round(self.duration_s, 3),
            "events_per_s": round(self.events_per_s, 1),
        }


@dataclass
class _BatchCounts:
    valid: int
    quarantined: dict[str, int]
    replayed: bool


class _BatchWriter:
    """The ``foreachBatch`` function: idempotent publication of one micro-batch (module doc)."""

    def __init__(self, opts: IngestOptions) -> None:
        self.opts = opts
        self.counts: dict[int, _BatchCounts] = {}
        self.lock = threading.Lock()
        self._query_id: str | None = None
        self._previous_rejected = False

    def query_id(self) -> str:
        if self._query_id is None:
            meta = self.opts.checkpoint_dir / "metadata"
            self._query_id = str(json.loads(meta.read_text(encoding="utf-8"))["id"])
        return self._query_id

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        lake = self.opts.lake_dir
        qid = self.query_id()
        marker = layout.marker_path(lake, qid, batch_id)
        if marker.is_file():
            # Already published. The batch must still run to its end: Spark checks that every
            # state store partition of the dedupe committed this batch's version.
            batch.write.format("noop").mode("overwrite").save()
            done = layout.read_json(marker)
            self._record(batch_id, _BatchCounts(done["valid"], done["quarantined"], True))
            return
        # A clean batch is read once. One with rejected rows is read a second time for the
        # quarantine. Caching a clean batch added about a third to its time (1M events), so a
        # batch is cached only when the previous one had rejected rows (errors tend to persist).
        cache = self.opts.cache_batches and self._previous_rejected
        if cache:
            batch = batch.persist()
        try:
            self._previous_rejected = self._write(batch, batch_id, qid, marker) > 0
        finally:
            if cache:
                batch.unpersist()

    def _write(self, batch: DataFrame, batch_id: int, qid: str, marker: Path) -> int:
        """Publish the batch and return how many rows it rejected.

        One pass writes the valid rows and counts every row by reason on the way (Spark's
        ``observe``); only a batch with rejected rows is read a second time, for the quarantine.
        """
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        stage = layout.staging_dir(self.opts.lake_dir, qid, batch_id)
        layout.remove_tree(stage)
        observation = Observation(f"recflow-ingest-{batch_id}")
        reason = F.col("reason")
        counted = batch.observe(
            observation,
            F.count(F.lit(1)).alias("rows"),
            *[F.count(F.when(reason == F.lit(code), 1)).alias(code) for code in REASONS],
        )
        valid = counted.filter(reason.isNull()).select(
            *FIELD_NAMES,
            "ingested_at",
            "source_ref",
            # The event's UTC date (the session time zone); cheaper than date_format.
            F.to_date("ts").cast("string").alias("dt"),
        )
        self._write_table(valid, stage / layout.EVENTS)
        observed = observation.get
        by_reason = {code: int(observed[code]) for code in REASONS if observed[code]}
        n_valid = int(observed["rows"]) - sum(by_reason.values())
        if by_reason:
            rejected = batch.filter(reason.isNotNull()).select(
                F.substring(F.col("value").cast("string"), 1, _RAW_LIMIT).alias("raw"),
                F.octet_length("value").alias("raw_bytes"),
                "reason",
                "field",
                "source_ref",
                "ingested_at",
                F.date_format("ingested_at", "yyyy-MM-dd").alias("dt"),
            )
            self._write_table(rejected, stage / layout.QUARANTINE)
        with layout.lake_lock(self.opts.lake_dir):
            for table in layout.TABLES:
                _publish(stage / table, self.opts.lake_dir / table, qid, batch_id)
            layout.write_json_atomic(
                marker,
                {
                    "query_id": qid,
                    "batch_id": batch_id,
                    "valid": n_valid,
                    "quarantined": by_reason,
                    "committed_at": datetime.now(tz=UTC).isoformat(),
                },
            )
        layout.remove_tree(stage.parent)
        self._record(batch_id, _BatchCounts(n_valid, by_reason, False))
        return sum(by_reason.values())

    def _write_table(self, frame: DataFrame, path: Path) -> None:
        if self.opts.repartition_by_date:
            frame = frame.repartition("dt")
        writer = frame.write.partitionBy("dt")
        plain = _UNIQUE_COLUMNS if self.opts.id_dictionaries else _UNIQUE_COLUMNS + _ID_COLUMNS
        for column in plain:
            # A column of distinct values gains nothing from a dictionary; building one first
            # and abandoning it took about 5% of the time in a profile of ingestion. Ids of
            # many users and items: see ``IngestOptions.id_dictionaries``.
            writer = writer.option(f"parquet.enable.dictionary#{column}", "false")
        writer.parquet(str(path))

    def _record(self, batch_id: int, counts: _BatchCounts) -> None:
        with self.lock:
            self.counts[batch_id] = counts


def _publish(staged_table: Path, lake_table: Path, query_id: str, batch_id: int) -> None:
    """Move each staged ``dt=`` partition into the lake with one atomic directory rename."""
    if not staged_table.is_dir():
        return
    for staged in layout.partitions(staged_table):
        for crc in staged.glob(".*.crc"):
            crc.unlink()
        target = lake_table / staged.name / layout.batch_dir_name(query_id, batch_id)
        if target.exists():
            # Published by an attempt that crashed before its marker; the content is the same.
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged, target)


def stamp_batch(frame: DataFrame) -> DataFrame:
    """``frame`` plus ``ingested_at``, the micro-batch's timestamp, behind a code generation
    boundary.

    Spark writes the micro-batch's timestamp into the code it generates, so without the
    boundary every batch compiled the validation anew and ran it on a cold JIT (three classes a
    batch; a 100k-event batch took 2.7 s instead of 2.0 s). ``observe`` (the rows read, a
    metric of each batch's progress) is not code-generated: behind it, only the small
    projection after it changes from batch to batch.
    """
    from pyspark.sql import functions as F

    counted = frame.observe("recflow_read", F.count(F.lit(1)).alias("rows"))
    return counted.withColumn("ingested_at", F.current_timestamp())


def build_query_frame(spark: SparkSession, opts: IngestOptions) -> DataFrame:
    """The streaming DataFrame that reaches ``foreachBatch``: validated and deduplicated rows.

    Columns: ``value``, ``source_ref``, ``ingested_at``, ``reason``, ``field`` and the typed
    event columns (``events.FIELD_NAMES``).
    """
    from pyspark.sql import functions as F

    checked = with_validation(
        read_stream(spark, opts.source),
        "value",
        now_ms=F.unix_millis(F.col("ingested_at")),
        rules=opts.rules,
        value_is_binary=opts.source.value_is_binary,
        fast_path=opts.fast_validation,
        native=opts.native_validation,
        before_clock=stamp_batch,
    )
    position = F.col("source_ref")
    if not opts.source.value_is_binary:
        # A file holds many records: its path alone does not single out a rejected line.
        position = F.concat_ws("#", position, F.expr("uuid()"))
    # Only a rejected record's raw text is kept (for the quarantine): the dedupe shuffles every
    # row, and the raw text would double the bytes shuffled and cached for valid ones.
    checked = checked.withColumn("value", F.when(F.col("reason").isNotNull(), F.col("value")))
    keyed = checked.withColumn(
        "_dedupe_key",
        F.when(F.col("reason").isNull(), F.concat(F.lit("e:"), F.col("event_id"))).otherwise(
            F.concat(F.lit("r:"), position)
        ),
    )
    seconds = int(opts.dedupe_watermark.total_seconds())
    return (
        keyed.withWatermark("ingested_at", f"{seconds} seconds")
        .dropDuplicatesWithinWatermark(["_dedupe_key"])
        .drop("_dedupe_key")
    )


def run_ingest(
    spark: SparkSession,
    opts: IngestOptions,
    *,
    follow: bool = False,
    stop_event: threading.Event | None = None,
    on_stage: StageCallback | None = None,
) -> IngestResult:
    """Ingest ``opts.source`` into the lake and return what happened.

    ``follow=False`` processes everything available now in one or more micro-batches and
    returns. ``follow=True`` runs micro-batches every ``trigger_interval`` until ``stop_event``
    is set (or the process is interrupted), then lets the running batch finish and returns.
    ``on_stage`` is called after each micro-batch with ``("batch-<id>", rows_in, valid, extra)``;
    ``extra`` holds the batch's counts and Spark's progress figures (durations, rows/s, state
    rows, tasks). Raises ``SourceUnavailableError`` before starting when the source cannot be
    read, and ``IngestError`` when the query fails, unless the failure is transient for the
    source: then the query is restarted from its checkpoint (``IngestOptions.max_restarts``).
    """
    check_source(opts.source)
    opts.lake_dir.mkdir(parents=True, exist_ok=True)
    opts.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    writer = _BatchWriter(opts)
    tracker = _ProgressTracker(spark, writer, on_stage)
    stop = stop_event if follow else None
    restarts = 0
    in_a_row = 0  # restarts since a micro-batch last completed
    started = time.monotonic()
    while True:
        query = _start_query(spark, opts, writer, follow=follow)
        tracker.attach(query)
        completed = len(tracker.done)
        failure: BaseException | None = None
        try:
            _wait(query, tracker, opts, stop)
        except KeyboardInterrupt:
            _stop_gracefully(query, opts.grace_s)
        except _QueryFailed as exc:
            failure = exc.__cause__
        finally:
            if query.isActive:
                query.stop()
        if failure is None:
            break
        if len(tracker.done) > completed:
            in_a_row = 0
        reason = failure_text(failure)
        # The job's error is public: the first line of the failure, never Spark's query plan or
        # a Python traceback of the batch function (the log has the whole text).
        if not is_transient_source_error(reason):
            log.error("the ingestion query failed: %s", failure)
            raise IngestError(f"the ingestion query failed: {_public_failure(reason)}") from failure
        if in_a_row >= opts.max_restarts:
            log.error("the ingestion query failed: %s", failure)
            if opts.max_restarts == 0:
                raise IngestError(
                    f"the ingestion query failed: {_public_failure(reason)}"
                ) from failure
            raise IngestError(
                f"the ingestion query failed on its source {in_a_row + 1} times in a row "
                f"(max_restarts={opts.max_restarts}); last failure: {_public_failure(reason)}"
            ) from failure
        in_a_row += 1
        restarts += 1
        log.warning(
            "ingestion of %s failed on its source (%s); restart %d from the checkpoint",
            opts.source.key,
            _first_line(reason),
            restarts,
        )
        try:
            if not _await_source(opts, in_a_row, stop, failure):
                break  # stopped while waiting
        except KeyboardInterrupt:
            break
    duration = time.monotonic() - started
    tracker.poll()
    stats = tracker.finished()
    return IngestResult.from_batches(
        source=opts.source.key,
        query_id=writer.query_id() if stats else str(query.id),
        batches=stats,
        duration_s=duration,
        restarts=restarts,
    )


def is_transient_source_error(text: str) -> bool:
    """Whether a query failure (its ``failure_text``) is the source being briefly unreachable
    (a Kafka broker restarting, a connection lost): worth a restart once the source is back."""
    return _TRANSIENT_SOURCE_ERROR.search(text) is not None


def failure_text(exc: BaseException) -> str:
    """The message of a query failure and of each of its causes, without the query description
    (plan, offsets) that Spark appends to the first one."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 10:
        seen.add(id(current))
        parts.append(str(current).split("\n=== Streaming Query ===", 1)[0])
        # PySpark keeps the Java cause of a captured exception in ``_cause``.
        cause = getattr(current, "_cause", None)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return "\n".join(parts)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


# The last line of a Python traceback, or of a Java exception: "pkg.SomeError: what happened".
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.$]*(?:Error|Exception): \S.*$")


def _public_failure(text: str) -> str:
    """A query failure for the job's public error: Spark's first line without the traceback it
    may quote, and the innermost exception's own line (what a user can act on)."""
    first = _first_line(text).split(" Return Message:", 1)[0]
    causes = [line.strip() for line in text.splitlines() if _EXCEPTION_LINE.match(line.strip())]
    if causes and causes[-1] not in first:
        return f"{first} (cause: {causes[-1][:300]})"
    return first


class _QueryFailed(Exception):
    """Raised by ``_wait`` from the query's ``StreamingQueryException`` (its ``__cause__``)."""


def _start_query(
    spark: SparkSession, opts: IngestOptions, writer: _BatchWriter, *, follow: bool
) -> StreamingQuery:
    frame = build_query_frame(spark, opts)
    stream = (
        frame.writeStream.queryName(f"recflow-ingest-{opts.source.key}")
        .foreachBatch(writer)
        .option("checkpointLocation", str(opts.checkpoint_dir.resolve()))
    )
    if follow:
        seconds = max(opts.trigger_interval.total_seconds(), 0.1)
        stream = stream.trigger(processingTime=f"{int(seconds * 1000)} milliseconds")
    else:
        stream = stream.trigger(availableNow=True)
    return stream.start()


def _await_source(
    opts: IngestOptions,
    attempt: int,
    stop_event: threading.Event | None,
    failure: BaseException,
) -> bool:
    """Wait before restart number ``attempt`` (in a row) until ``check_source`` passes.

    Returns False when ``stop_event`` is set meanwhile (nothing to restart), raises
    ``IngestError`` when the source is still unavailable after ``opts.source_wait_s``.
    """
    delay = min(opts.restart_backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)
    deadline = time.monotonic() + opts.source_wait_s
    while True:
        if stop_event is not None:
            if stop_event.wait(delay):
                return False
        else:
            time.sleep(delay)
        try:
            check_source(opts.source)
            return True
        except SourceUnavailableError as exc:
            if time.monotonic() >= deadline:
                raise IngestError(
                    f"the ingestion query failed on its source and the source did not come "
                    f"back within {opts.source_wait_s:g} s: {exc}; query failure: "
                    f"{_first_line(failure_text(failure))}"
                ) from exc
        delay = min(delay * 2, _MAX_BACKOFF_S, max(deadline - time.monotonic(), 0.0))


def _wait(
    query: StreamingQuery,
    tracker: _ProgressTracker,
    opts: IngestOptions,
    stop_event: threading.Event | None,
) -> None:
    """Until the query ends or ``stop_event`` is set; raises ``_QueryFailed`` if it fails.
    The progress of every batch the query completed is collected either way."""
    from pyspark.errors import StreamingQueryException

    while True:
        if stop_event is not None and stop_event.is_set():
            _stop_gracefully(query, opts.grace_s)
            tracker.poll()
            return
        try:
            done = query.awaitTermination(opts.poll_s)
        except StreamingQueryException as exc:
            tracker.poll()
            raise _QueryFailed(str(exc)) from exc
        tracker.poll()
        if done:
            return


def _stop_gracefully(query: StreamingQuery, grace_s: float) -> None:
    """Stop ``query`` after its running micro-batch (if any) ends, waiting at most ``grace_s``."""
    deadline = time.monotonic() + grace_s
    while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.1)
    query.stop()


class _ProgressTracker:
    """Joins Spark's progress reports with the writer's counts, batch by batch."""

    def __init__(
        self,
        spark: SparkSession,
        writer: _BatchWriter,
        on_stage: StageCallback | None,
        query: StreamingQuery | None = None,
    ) -> None:
        self.spark = spark
        self.query = query
        self.writer = writer
        self.on_stage = on_stage
        self.progress: dict[int, dict[str, Any]] = {}
        self.done: dict[int, BatchStats] = {}
        self._seen_jobs: set[int] = set()

    def attach(self, query: StreamingQuery) -> None:
        """Follow ``query`` from now on: the same checkpoint, restarted after a failure.

        Batches are keyed by id across queries: a batch the previous query completed is kept; one
        it did not complete (no progress report) is counted when the restarted query replays it.
        """
        self.query = query

    def poll(self) -> None:
        if self.query is None:
            return
        for report in self.query.recentProgress:
            batch_id = int(report["batchId"])
            if int(report.get("numInputRows", 0)) > 0 or batch_id not in self.progress:
                self.progress[batch_id] = report
        with self.writer.lock:
            ready = {
                b: c
                for b, c in self.writer.counts.items()
                if b not in self.done and b in self.progress
            }
        for batch_id in sorted(ready):
            self._finish(batch_id, ready[batch_id], self.progress[batch_id])

    def _finish(self, batch_id: int, counts: _BatchCounts, report: dict[str, Any]) -> None:
        rows_in = int(report.get("numInputRows", 0))
        quarantined = sum(counts.quarantined.values())
        durations = dict(report.get("durationMs", {}))
        extra: dict[str, Any] = {
            "batch_id": batch_id,
            "valid": counts.valid,
            "quarantined": dict(counts.quarantined),
            "duplicates": max(rows_in - counts.valid - quarantined, 0),
            "replayed": counts.replayed,
            "input_rows_per_s": report.get("inputRowsPerSecond"),
            "processed_rows_per_s": report.get("processedRowsPerSecond"),
            "durations_ms": durations,
            # Keys the dedupe stored this batch (Spark does not count its total state rows:
            # the count costs a lookup per write).
            "state_rows_updated": sum(
                int(s.get("numRowsUpdated", 0)) for s in report.get("stateOperators", [])
            ),
            "state_memory_bytes": sum(
                int(s.get("memoryUsedBytes", 0)) for s in report.get("stateOperators", [])
            ),
            "sources": [
                {"start": s.get("startOffset"), "end": s.get("endOffset")}
                for s in report.get("sources", [])
            ],
            **self._task_counts(),
        }
        stats = BatchStats(
            batch_id=batch_id,
            rows_in=rows_in,
            valid=counts.valid,
            quarantined=dict(counts.quarantined),
            duplicates=extra["duplicates"],
            duration_ms=int(durations.get("triggerExecution", 0)),
            replayed=counts.replayed,
            extra=extra,
        )
        self.done[batch_id] = stats
        if self.on_stage is not None:
            self.on_stage(f"batch-{batch_id}", rows_in, counts.valid, extra)

    def _task_counts(self) -> dict[str, Any]:
        """Spark jobs, stages and tasks run since the previous batch (from the status tracker),
        and what those stages read, shuffled and spent (from Spark's status store: input rows and
        bytes, shuffle read and write bytes, executor run time), with no extra pass over data."""
        tracker = self.spark.sparkContext.statusTracker()
        group = str(self.query.runId) if self.query is not None else None
        jobs = [j for j in tracker.getJobIdsForGroup(group) if j not in self._seen_jobs]
        stage_ids: list[int] = []
        tasks = 0
        for job_id in jobs:
            self._seen_jobs.add(job_id)
            info = tracker.getJobInfo(job_id)
            if info is None:
                continue
            for stage_id in info.stageIds:
                stage = tracker.getStageInfo(stage_id)
                if stage is not None:
                    stage_ids.append(stage_id)
                    tasks += stage.numTasks
        out: dict[str, Any] = {
            "spark_jobs": len(jobs),
            "spark_stages": len(stage_ids),
            "spark_tasks": tasks,
        }
        out.update(self._stage_metrics(set(stage_ids)))
        return out

    def _stage_metrics(self, stage_ids: set[int]) -> dict[str, Any]:
        metrics = {
            "input_rows": 0,
            "input_bytes": 0,
            "shuffle_read_bytes": 0,
            "shuffle_write_bytes": 0,
            "output_bytes": 0,
            "executor_run_time_ms": 0,
        }
        if not stage_ids:
            return metrics
        try:
            # AppStatusStore is Spark's own record behind the UI and the status tracker; it is
            # kept even with the UI off. Reached through py4j, it is internal API: if a Spark
            # version changes it, the batch still succeeds and the reason is recorded.
            store = self.spark.sparkContext._jsc.sc().statusStore()  # type: ignore[union-attr]
            quantiles = getattr(store, "stageList$default$4")()
            stages = store.stageList(None, False, False, quantiles, None)
            for i in range(stages.size()):
                st = stages.apply(i)
                if st.stageId() not in stage_ids:
                    continue
                metrics["input_rows"] += int(st.inputRecords())
                metrics["input_bytes"] += int(st.inputBytes())
                metrics["shuffle_read_bytes"] += int(st.shuffleReadBytes())
                metrics["shuffle_write_bytes"] += int(st.shuffleWriteBytes())
                metrics["output_bytes"] += int(st.outputBytes())
                metrics["executor_run_time_ms"] += int(st.executorRunTime())
        except Exception as exc:  # py4j raises several types; the metrics are best effort
            return {"spark_metrics_error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        return metrics

    def finished(self) -> list[BatchStats]:
        return [self.done[b] for b in sorted(self.done)]


def main(argv: list[str] | None = None) -> int:
    """``python -m backend.pipeline.ingest``: run one ingestion in this process.

    A plain process entry point (no Settings): the integration tests start and kill it, and it is
    handy for running the job by hand. Prints the ``IngestResult`` summary as one JSON line.
    """
    import argparse
    import signal
    import sys

    from backend.pipeline.sources import DirSource, KafkaSource
    from backend.pipeline.spark import SparkOptions, build_spark

    parser = argparse.ArgumentParser(prog="python -m backend.pipeline.ingest")
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--landing", type=Path, help="landing directory (file source)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (Kafka source)")
    parser.add_argument("--topic", default="interactions")
    parser.add_argument("--jars-dir", type=Path)
    parser.add_argument("--var", type=Path, default=Path("var"))
    parser.add_argument("--max-offsets-per-trigger", type=int)
    parser.add_argument("--max-files-per-trigger", type=int)
    parser.add_argument("--follow", action="store_true")
    parser.add_argument("--trigger-ms", type=int, default=1000)
    args = parser.parse_args(argv)
    if (args.landing is None) == (args.bootstrap is None):
        parser.error("give exactly one of --landing and --bootstrap")
    source: EventSource
    if args.bootstrap:
        source = KafkaSource(args.bootstrap, args.topic, args.max_offsets_per_trigger)
    else:
        source = DirSource(args.landing, args.max_files_per_trigger)
    spark = build_spark(
        SparkOptions(var_dir=args.var, jars_dir=args.jars_dir, kafka=args.bootstrap is not None)
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    opts = IngestOptions(
        source=source,
        lake_dir=args.lake,
        checkpoint_root=args.checkpoints,
        trigger_interval=timedelta(milliseconds=args.trigger_ms),
    )

    def report(name: str, rows_in: int, rows_out: int, extra: dict[str, Any]) -> None:
        print(json.dumps({"stage": name, "rows_in": rows_in, "rows_out": rows_out}), flush=True)

    result = run_ingest(spark, opts, follow=args.follow, stop_event=stop, on_stage=report)
    print(json.dumps(result.to_dict()), flush=True)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
