"""What an ingestion run did, batch by batch: ``BatchStats``, ``IngestResult``, and the tracker
that builds them.

Each batch is counted once from the persisted batch (valid and quarantined by reason); rows in
and durations come from the query's progress reports; duplicates = rows in - valid - quarantined.
No second pass over the source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backend.pipeline.ingest.writer import BatchCounts, BatchWriter

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

#: ``on_stage(name, rows_in, rows_out, extra)``: called once per micro-batch (name ``batch-<id>``).
StageCallback = Callable[[str, int, int, dict[str, Any]], None]


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
class IngestSummary:
    """The totals of a run as the job reports them (its JSON shape): ``IngestResult`` without the
    per-batch details, the duration rounded to milliseconds and the rate to 0.1 event/s."""

    source: str
    query_id: str
    rows_in: int
    valid: int
    quarantined: dict[str, int]
    quarantined_total: int
    duplicates: int
    batches: int
    restarts: int
    duration_s: float
    events_per_s: float


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
        """Rejected rows, all reasons together."""
        return sum(self.quarantined.values())

    @property
    def events_per_s(self) -> float:
        """Rows in per second of wall time of the run (start of the query to its end)."""
        return self.rows_in / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def summary(self) -> IngestSummary:
        """The run's totals without the per-batch details (``to_jsonable`` it for the job)."""
        return IngestSummary(
            source=self.source,
            query_id=self.query_id,
            rows_in=self.rows_in,
            valid=self.valid,
            quarantined=dict(self.quarantined),
            quarantined_total=self.quarantined_total,
            duplicates=self.duplicates,
            batches=self.batches,
            restarts=self.restarts,
            duration_s=round(self.duration_s, 3),
            events_per_s=round(self.events_per_s, 1),
        )


class ProgressTracker:
    """Joins Spark's progress reports with the writer's counts, batch by batch."""

    def __init__(
        self,
        spark: SparkSession,
        writer: BatchWriter,
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
        """Take in the query's new progress reports and finish every batch both sides know."""
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

    def _finish(self, batch_id: int, counts: BatchCounts, report: dict[str, Any]) -> None:
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
        """The finished batches, in id order."""
        return [self.done[b] for b in sorted(self.done)]
