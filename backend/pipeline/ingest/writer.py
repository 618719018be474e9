"""The exactly-once writer: ``BatchWriter``, the ``foreachBatch`` function of the ingestion query.

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
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from backend.lake import layout
from backend.pipeline.ingest.options import IngestOptions
from backend.streaming.events import FIELD_NAMES, REASONS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_RAW_LIMIT = 1 << 20  # characters of a rejected record kept in the quarantine
_UNIQUE_COLUMNS = ("event_id", "source_ref", "raw")
_ID_COLUMNS = ("user", "item")
_OPEN_DATES = 8  # Parquet files a write task keeps open at once, one per event date


@dataclass
class BatchCounts:
    """What the writer published for one batch (read back from its marker when ``replayed``)."""

    valid: int
    quarantined: dict[str, int]
    replayed: bool


class BatchWriter:
    """The ``foreachBatch`` function: idempotent publication of one micro-batch (module doc)."""

    def __init__(self, opts: IngestOptions) -> None:
        self.opts = opts
        self.counts: dict[int, BatchCounts] = {}
        self.lock = threading.Lock()
        self._query_id: str | None = None
        self._previous_rejected = False

    def query_id(self) -> str:
        """The id Spark keeps in the checkpoint for this query (stable across restarts)."""
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
            self._record(batch_id, BatchCounts(done["valid"], done["quarantined"], True))
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

        One pass writes the valid rows and counts the rows and the rejected ones on the way
        (Spark's ``observe``); only a batch with rejected rows is read a second time, for the
        quarantine, which counts them by reason.
        """
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        stage = layout.staging_dir(self.opts.lake_dir, qid, batch_id)
        layout.remove_tree(stage)
        observation = Observation(f"recflow-ingest-{batch_id}")
        reason = F.col("reason")
        # Two counts per row; the count by reason is taken on the rejected rows alone, in the
        # second pass that only a batch with rejected rows makes.
        counted = batch.observe(
            observation, F.count(F.lit(1)).alias("rows"), F.count(reason).alias("rejected")
        )
        valid = counted.filter(reason.isNull()).select(
            *FIELD_NAMES,
            "ingested_at",
            "source_ref",
            # The event's UTC date (the session time zone). A date column: Spark names the
            # directory dt=yyyy-MM-dd as it would for the string, which it would format per row.
            F.to_date("ts").alias("dt"),
        )
        self._write_table(valid, stage / layout.EVENTS)
        observed = observation.get
        n_valid = int(observed["rows"]) - int(observed["rejected"])
        by_reason: dict[str, int] = {}
        if observed["rejected"]:
            by_code = Observation(f"recflow-quarantine-{batch_id}")
            rejected = batch.filter(reason.isNotNull())
            rejected = rejected.observe(
                by_code,
                *[F.count(F.when(reason == F.lit(code), 1)).alias(code) for code in REASONS],
            )
            rejected = rejected.select(
                F.substring(F.col("value").cast("string"), 1, _RAW_LIMIT).alias("raw"),
                F.octet_length("value").alias("raw_bytes"),
                "reason",
                "field",
                "source_ref",
                "ingested_at",
                F.date_format("ingested_at", "yyyy-MM-dd").alias("dt"),
            )
            self._write_table(rejected, stage / layout.QUARANTINE)
            by_reason = {c: int(n) for c, n in by_code.get.items() if n}
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
        self._record(batch_id, BatchCounts(n_valid, by_reason, False))
        return sum(by_reason.values())

    def _write_table(self, frame: DataFrame, path: Path) -> None:
        if self.opts.repartition_by_date:
            frame = frame.repartition("dt")
        else:
            _write_unsorted(frame)
        writer = frame.write.partitionBy("dt")
        plain = _UNIQUE_COLUMNS if self.opts.id_dictionaries else _UNIQUE_COLUMNS + _ID_COLUMNS
        for column in plain:
            # A column of distinct values gains nothing from a dictionary; building one first
            # and abandoning it took about 5% of the time in a profile of ingestion. Ids of
            # many users and items: see ``IngestOptions.id_dictionaries``.
            writer = writer.option(f"parquet.enable.dictionary#{column}", "false")
        writer.parquet(str(path))

    def _record(self, batch_id: int, counts: BatchCounts) -> None:
        with self.lock:
            self.counts[batch_id] = counts


def _write_unsorted(frame: DataFrame) -> None:
    """Let a task write its rows with one open file per date instead of sorting them by date
    first (Spark's planned write sorts every row, about 5% of ingestion's CPU); a task that
    meets more than ``_OPEN_DATES`` dates sorts the rest. The setting is the streaming
    query's own session's."""
    conf = frame.sparkSession.conf
    conf.set("spark.sql.optimizer.plannedWrite.enabled", "false")
    conf.set("spark.sql.maxConcurrentOutputFileWriters", str(_OPEN_DATES))


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
