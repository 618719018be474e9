"""Structured Streaming ingestion: raw events (Kafka or landing files) -> Parquet lake + quarantine.

The pipeline, identical for both sources::

    source (value, source_ref)
      -> contract v1 validation in Spark SQL (backend.pipeline.validation): reason, typed columns
         (the checks against the clock after ingested_at = micro-batch timestamp, added behind
         a code generation boundary so that the generated code is the same in every batch)
      -> dropDuplicatesWithinWatermark(event_id), watermark on ingested_at
      -> foreachBatch: valid rows -> lake/events/dt=<event date>/,
                       rejected rows -> lake/quarantine/dt=<ingest date>/

Dedupe
------
The watermark is on ``ingested_at`` (processing time), not on the event time: an event-time
watermark would drop valid events that arrive later than the delay (a replay of old ratings,
a slow partition), while duplicates are in practice retries, close together in arrival time. So an
``event_id`` seen again within ``dedupe_watermark`` of ingestion time is dropped and counted.
Rejected records get a unique key (their source position) so they all reach the quarantine.

The exactly-once writer is ``writer``, the counts are ``progress``, and the restarts after a
source failure are ``failures``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from backend.pipeline.ingest.failures import (
    IngestError,
    await_source,
    failure_text,
    first_line,
    is_transient_source_error,
    public_failure,
)
from backend.pipeline.ingest.options import IngestOptions
from backend.pipeline.ingest.progress import IngestResult, ProgressTracker, StageCallback
from backend.pipeline.ingest.writer import BatchWriter
from backend.pipeline.sources import check_source, read_stream
from backend.pipeline.validation import with_validation

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


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
    writer = BatchWriter(opts)
    tracker = ProgressTracker(spark, writer, on_stage)
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
            raise IngestError(f"the ingestion query failed: {public_failure(reason)}") from failure
        if in_a_row >= opts.max_restarts:
            log.error("the ingestion query failed: %s", failure)
            if opts.max_restarts == 0:
                raise IngestError(
                    f"the ingestion query failed: {public_failure(reason)}"
                ) from failure
            raise IngestError(
                f"the ingestion query failed on its source {in_a_row + 1} times in a row "
                f"(max_restarts={opts.max_restarts}); last failure: {public_failure(reason)}"
            ) from failure
        in_a_row += 1
        restarts += 1
        log.warning(
            "ingestion of %s failed on its source (%s); restart %d from the checkpoint",
            opts.source.key,
            first_line(reason),
            restarts,
        )
        try:
            if not await_source(opts, in_a_row, stop, failure):
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


class _QueryFailed(Exception):
    """Raised by ``_wait`` from the query's ``StreamingQueryException`` (its ``__cause__``)."""


def _start_query(
    spark: SparkSession, opts: IngestOptions, writer: BatchWriter, *, follow: bool
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


def _wait(
    query: StreamingQuery,
    tracker: ProgressTracker,
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
