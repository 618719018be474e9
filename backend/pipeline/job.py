"""``ingest``: events from Kafka (or the landing directory) into the Parquet lake, with Spark.

``follow=false`` catches up with everything available and stops (Structured Streaming's
availableNow); ``follow=true`` keeps a processingTime trigger running until the job is
cancelled or ``max_duration_s`` passes. Every micro-batch is recorded as a ``micro_batch`` stage
with its rows in, valid rows out, and Spark's own figures in ``extra``; the ``query`` stage is
the rest of the query's time, with the run's counts in ``extra``. Exactly-once comes from
the per-source checkpoint and the lake's batch commit (see ``backend.pipeline.ingest.writer``).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from backend.config import Settings
from backend.jobs.context import JobCancelled, JobContext
from backend.jobs.kind import JobKind
from backend.jobs.params import JobParams, confined, context_settings, custom_error
from backend.jsonable import to_jsonable
from backend.paths import confine
from backend.pipeline.ingest import IngestOptions, run_ingest
from backend.pipeline.sources import DirSource, EventSource, KafkaSource
from backend.pipeline.spark import SparkOptions, build_spark


class IngestParams(JobParams):
    source: Literal["auto", "kafka", "dir"] = Field(
        default="auto", description="auto: Kafka when configured, else the landing directory"
    )
    path: str | None = Field(
        default=None,
        description="dir source (default: the landing dir); a folder inside the allowed roots, "
        "created when missing",
    )
    topic: str | None = Field(
        default=None, description="Kafka topic (default: RECFLOW_KAFKA_TOPIC)"
    )
    follow: bool = Field(default=False, description="keep running (processingTime trigger)")
    trigger_s: float = Field(default=5.0, gt=0, le=3600)
    max_duration_s: float | None = Field(default=None, gt=0, description="stop following after")
    max_offsets_per_trigger: int | None = Field(default=None, ge=1)
    max_files_per_trigger: int | None = Field(default=None, ge=1)
    dedupe_watermark_s: int = Field(default=3600, ge=1)
    repartition_by_date: bool | None = None
    cache_batches: bool | None = None

    @field_validator("path")
    @classmethod
    def _confined(cls, v: str | None, info: ValidationInfo) -> str | None:
        # A landing folder may not exist yet (the source creates it), but it must be a folder.
        return None if v is None else confined(v, info, kind="dir", must_exist=False)

    @model_validator(mode="after")
    def _kafka_configured(self, info: ValidationInfo) -> IngestParams:
        settings = context_settings(info)
        if settings is None:
            return self
        if self.source == "kafka" and not settings.kafka_bootstrap_servers:
            raise custom_error(
                "service_not_configured", "source=kafka needs RECFLOW_KAFKA_BOOTSTRAP_SERVERS"
            )
        return self


def source_for(p: IngestParams, settings: Settings) -> EventSource:
    kind = p.source
    if kind == "auto":
        kind = "kafka" if settings.kafka_bootstrap_servers else "dir"
    if kind == "kafka":
        if not settings.kafka_bootstrap_servers:
            raise ValueError("source=kafka needs RECFLOW_KAFKA_BOOTSTRAP_SERVERS")
        return KafkaSource(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=p.topic or settings.kafka_topic,
            max_offsets_per_trigger=p.max_offsets_per_trigger
            or settings.spark_max_offsets_per_trigger,
        )
    return DirSource(
        # Checked again right before use: the folder may have been replaced by a link.
        path=confine(p.path, settings, field="path", kind="dir", must_exist=False)
        if p.path
        else settings.landing_dir,
        max_files_per_trigger=p.max_files_per_trigger,
    )


def spark_options(settings: Settings) -> SparkOptions:
    jars = Path(settings.spark_jars_dir) if settings.spark_jars_dir else None
    return SparkOptions(
        master=settings.spark_master,
        driver_memory=settings.spark_driver_memory,
        shuffle_partitions=settings.spark_shuffle_partitions,
        var_dir=settings.data_dir,
        jars_dir=jars,
        # One session per process: include the Kafka connector whenever it is available, so a
        # later Kafka job can reuse a session started for the landing directory.
        kafka=bool(jars) or bool(settings.kafka_bootstrap_servers),
        gc=settings.spark_gc,
        state_store=settings.spark_state_store,
    )


def run(ctx: JobContext, p: IngestParams) -> dict[str, Any]:
    settings = ctx.settings
    source = source_for(p, settings)
    with ctx.stage("spark_session") as st:
        spark = build_spark(spark_options(settings))
        st.extra["master"] = settings.spark_master
    opts = IngestOptions(
        source=source,
        lake_dir=settings.lake_dir,
        checkpoint_root=settings.checkpoint_dir,
        dedupe_watermark=timedelta(seconds=p.dedupe_watermark_s),
        rules=settings.event_rules(),
        repartition_by_date=settings.spark_repartition_by_date
        if p.repartition_by_date is None
        else p.repartition_by_date,
        cache_batches=settings.spark_cache_reused if p.cache_batches is None else p.cache_batches,
        trigger_interval=timedelta(seconds=p.trigger_s),
    )
    stop = threading.Event()
    seen = {"rows": 0}

    def on_batch(name: str, rows_in: int, rows_out: int, extra: dict[str, Any]) -> None:
        seen["rows"] += rows_in
        duration_ms = extra.get("duration_ms") or extra.get("durations_ms", {}).get(
            "triggerExecution", 0
        )
        ctx.record(
            "micro_batch",
            duration_s=float(duration_ms) / 1000,
            rows_in=rows_in,
            rows_out=rows_out,
            extra={"batch": name, **extra},
        )
        try:
            ctx.progress(0.5, f"{name}: {seen['rows']} events so far")
        except JobCancelled:
            stop.set()  # let the running batch finish, then stop cleanly

    timer: threading.Timer | None = None
    if p.follow and p.max_duration_s:
        timer = threading.Timer(p.max_duration_s, stop.set)
        timer.start()
    watcher = None
    if p.follow:
        # Notice a cancel even while no batch arrives.
        def watch() -> None:
            while not stop.wait(1.0):
                try:
                    ctx.check_cancelled()
                except JobCancelled:
                    stop.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
    try:
        # The query's own time: starting, planning and stopping it (and, following, waiting for
        # events); its micro-batches are stages of their own, with the rows.
        with ctx.stage("query") as st:
            result = run_ingest(spark, opts, follow=p.follow, stop_event=stop, on_stage=on_batch)
            summary: dict[str, Any] = to_jsonable(result.summary)
            st.extra.update(summary)
    finally:
        stop.set()
        if timer is not None:
            timer.cancel()
    out = dict(summary)
    out["mode"] = "follow" if p.follow else "available_now"
    out["lake"] = str(settings.lake_dir.relative_to(settings.data_dir))  # in the data dir
    return out


KIND = JobKind("ingest", IngestParams, run, "Stream events into the Parquet lake (Spark).")
