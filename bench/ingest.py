"""Ingestion throughput: Kafka -> Spark (validation + dedupe) -> Parquet lake, and the baselines.

Prints ONE JSON line:

* ``events_per_s``: the tuned ingestion of ``--events`` simulated events from Kafka (validation
  and dedupe on), availableNow, wall time of the query (start, all micro-batches, stop) on a
  warm JVM: the median of ``--repeats`` runs, each from a fresh checkpoint (all runs in
  ``events_per_s_runs``, the slowest in ``min_events_per_s``), after ``--warmup-runs``
  unmeasured runs on the same topic (``warmup_events_per_s_runs``, in order): the JIT keeps
  compiling the large generated validation code over the first few million records, and on two
  cores the runs got faster up to about the sixth (56k, 114k, 133k, 144k and 156k events/s
  for the first five runs of a million, 152k-164k for the next five), hence 5 by default;
  ``jvm_cpu_s_per_million``: the Spark JVM's CPU time over those runs per million events;
  ``--jfr PATH`` records the measured runs with Java Flight Recorder;
* ``kafka_consumer_perf_per_s``: Kafka's own ConsumerPerformance on the same topic
  (``scripts/kafka.sh perf``), the ceiling for reading it;
* ``aiokafka_count_per_s``: a Python aiokafka consumer that only counts the records;
* the tuning knobs, each switched away from the tuned setting in one run
  (``<knob>_events_per_s`` and ``<knob>_files_per_date_per_batch``): ``untuned`` (Spark's 200
  shuffle partitions, RocksDB counting its rows, no repartition, no cache, id dictionaries),
  ``shuffle_partitions_200``, ``rocksdb_count_rows``, ``repartition_by_date`` (on; off is the
  default), ``untuned_repartition_by_date`` (200 partitions with the repartition),
  ``max_offsets_per_trigger_quarter`` (four micro-batches), ``jvm_parser_off`` (canonical
  records recognised by a regex and parsed with ``from_json`` instead of the JVM parser),
  ``state_store_memory`` (the dedupe's state in Spark's in-memory store instead of RocksDB;
  ``state_memory_bytes`` is what each held for the run's event ids), ``id_dictionaries``
  (Parquet dictionaries for ``user`` and ``item``; ``<knob>_events_bytes`` is the size of the
  events written);
* ``malformed_cache_on/off_events_per_s``: traffic with ``--malformed-fraction`` malformed
  records, five micro-batches, with caching of the batches read twice on and off;
* ``file_events_per_s``: the embedded mode (landing directory of JSON lines -> lake), measured
  after the Kafka runs in the same JVM;
* ratios between them, and the producer's rate.

Kafka parts are skipped (with ``kafka_skipped`` saying why) when RECFLOW_KAFKA_BOOTSTRAP_SERVERS
or RECFLOW_SPARK_JARS_DIR is not set; ``eval "$(scripts/services.sh env)"`` sets them.

    .venv/bin/python bench/ingest.py --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.config import Settings  # noqa: E402
from backend.pipeline.ingest import IngestOptions, IngestResult, run_ingest  # noqa: E402
from backend.pipeline.sources import DirSource, KafkaSource  # noqa: E402
from backend.pipeline.spark import STATE_PROVIDERS, SparkOptions, build_spark  # noqa: E402
from backend.streaming.producer import DirSink, KafkaSink, ensure_topic, produce_sync  # noqa: E402
from backend.streaming.simulator import TrafficSpec, simulate_traffic  # noqa: E402

TRACK_ROWS = "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows"
STATE_PROVIDER = "spark.sql.streaming.stateStore.providerClass"
ROCKSDB, HDFS = STATE_PROVIDERS["rocksdb"], STATE_PROVIDERS["hdfs"]


def traffic(seed: int) -> Any:
    # step_ms=0: every event at the start time, so a large run never drifts into the future.
    return simulate_traffic(TrafficSpec(seed=seed, users=100_000, items=20_000, step_ms=0))


def delete_topic(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    async def delete() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()

    asyncio.run(delete())


def aiokafka_count(bootstrap: str, topic: str, n: int) -> float:
    """Records per second of an aiokafka consumer that reads ``n`` records and only counts."""
    from aiokafka import AIOKafkaConsumer

    async def count() -> float:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            fetch_max_bytes=64 << 20,
            max_partition_fetch_bytes=16 << 20,
        )
        await consumer.start()
        try:
            seen = 0
            started = time.monotonic()
            while seen < n:
                batches = await consumer.getmany(timeout_ms=1000, max_records=100_000)
                seen += sum(len(records) for records in batches.values())
            return seen / (time.monotonic() - started)
        finally:
            await consumer.stop()

    return asyncio.run(count())


def consumer_perf(topic: str, n: int) -> float | None:
    """nMsg.sec reported by Kafka's ConsumerPerformance (scripts/kafka.sh perf)."""
    script = REPO / "scripts" / "kafka.sh"
    if not script.is_file():
        return None
    out = subprocess.run(
        ["bash", str(script), "perf", topic, str(n), "--timeout", "120000"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    header_at = next(i for i, line in enumerate(lines) if "nMsg.sec" in line)
    header = [h.strip() for h in lines[header_at].split(",")]
    values = [v.strip() for v in lines[header_at + 1].split(",")]
    return float(values[header.index("nMsg.sec")])


def ingest_once(spark: Any, opts: IngestOptions) -> IngestResult:
    """One availableNow run from a fresh checkpoint into a fresh lake (both removed after)."""
    shutil.rmtree(opts.lake_dir, ignore_errors=True)
    shutil.rmtree(opts.checkpoint_root, ignore_errors=True)
    result = run_ingest(spark, opts)
    LAST_FILES.clear()
    LAST_FILES.extend(
        len(list(batch_dir.glob("*.parquet")))
        for batch_dir in (opts.lake_dir / "events").glob("dt=*/batch-*")
    )
    LAST_BYTES[0] = sum(f.stat().st_size for f in (opts.lake_dir / "events").rglob("*.parquet"))
    shutil.rmtree(opts.lake_dir, ignore_errors=True)
    shutil.rmtree(opts.checkpoint_root, ignore_errors=True)
    return result


LAST_FILES: list[int] = []  # Parquet files per (date, batch) directory of the last run
LAST_BYTES = [0]  # bytes of the events table of the last run


def state_memory(result: IngestResult) -> int:
    """The largest memory the dedupe's state store reported for a batch of the run."""
    return max((int(b.extra.get("state_memory_bytes", 0)) for b in result.batch_stats), default=0)


def files_per_partition() -> float:
    return round(statistics.mean(LAST_FILES), 2) if LAST_FILES else 0.0


def jvm_cpu_s(spark: Any) -> float:
    """CPU seconds the Spark JVM has used so far (all its threads, JIT and GC included)."""
    info = spark.sparkContext._jvm.java.lang.ProcessHandle.current().info()
    return float(info.totalCpuDuration().get().toMillis()) / 1000


def flight_recording(spark: Any, action: str, path: Path) -> None:
    """Start or stop a Java Flight Recording (the ``profile`` settings) of the Spark JVM."""
    pid = str(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    command = ["jcmd", pid, f"JFR.{action}", "name=recflow-bench"]
    if action == "start":
        command += ["settings=profile"]
    else:
        command += [f"filename={path.resolve()}"]
    subprocess.run(command, capture_output=True, check=True, timeout=60)


def measure_knobs(
    spark: Any, tuned: IngestOptions, partitions: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Each tuning knob switched away from the tuned setting, one run each, and all of them
    off together (``untuned``): events/s and Parquet files per date and batch."""
    out: dict[str, Any] = {}

    def run(name: str, opts: IngestOptions, conf: dict[str, str] | None = None) -> None:
        for key, value in (conf or {}).items():
            spark.conf.set(key, value)
        try:
            result = ingest_once(spark, opts)
        finally:
            spark.conf.set("spark.sql.shuffle.partitions", partitions)
            spark.conf.set(TRACK_ROWS, "false")
            spark.conf.set(STATE_PROVIDER, ROCKSDB)
        out[f"{name}_events_per_s"] = round(result.events_per_s)
        out[f"{name}_files_per_date_per_batch"] = files_per_partition()
        out[f"{name}_batches"] = result.batches
        out[f"{name}_state_memory_bytes"] = state_memory(result)
        out[f"{name}_events_bytes"] = LAST_BYTES[0]

    untuned_conf = {"spark.sql.shuffle.partitions": "200", TRACK_ROWS: "true"}
    untuned = replace(tuned, repartition_by_date=False, cache_batches=False, id_dictionaries=True)
    run("untuned", untuned, untuned_conf)
    run("shuffle_partitions_200", tuned, {"spark.sql.shuffle.partitions": "200"})
    run("rocksdb_count_rows", tuned, {TRACK_ROWS: "true"})
    run("repartition_by_date", replace(tuned, repartition_by_date=True))
    run("untuned_repartition_by_date", replace(tuned, repartition_by_date=True), untuned_conf)
    capped = replace(tuned.source, max_offsets_per_trigger=args.events // 4)
    run("max_offsets_per_trigger_quarter", replace(tuned, source=capped))
    run("jvm_parser_off", replace(tuned, native_validation=False))
    run("state_store_memory", tuned, {STATE_PROVIDER: HDFS})
    run("id_dictionaries", replace(tuned, id_dictionaries=True))
    return out


def measure_cache(
    spark: Any, bootstrap: str, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Caching the batches that are read twice: traffic with malformed records in every
    micro-batch, with caching on and off."""
    topic = f"recflow-bench-bad-{uuid.uuid4().hex[:8]}"
    ensure_topic(bootstrap, topic, partitions=args.partitions)
    n = args.malformed_events
    spec = TrafficSpec(
        seed=4, users=100_000, items=20_000, step_ms=0, malformed_fraction=args.malformed_fraction
    )
    produce_sync(itertools.islice(simulate_traffic(spec), n), KafkaSink(bootstrap, topic))
    source = KafkaSource(bootstrap, topic, max_offsets_per_trigger=max(n // 5, 1))
    opts = IngestOptions(source, work / "lake-bad", work / "cp-bad")
    out: dict[str, Any] = {"malformed_events": n, "malformed_fraction": args.malformed_fraction}
    # Unmeasured: the first run over rejected rows compiles the quarantine's code, which would
    # count against whichever setting ran first.
    ingest_once(spark, opts)
    for name, cache in (("cache_on", True), ("cache_off", False)):
        result = ingest_once(spark, replace(opts, cache_batches=cache))
        out[f"malformed_{name}_events_per_s"] = round(result.events_per_s)
        out[f"malformed_{name}_batches"] = result.batches
        out["malformed_quarantined"] = result.quarantined_total
    delete_topic(bootstrap, topic)
    return out


def measure_files(
    spark: Any, work: Path, args: argparse.Namespace, file_events: int
) -> dict[str, Any]:
    """The embedded mode: a landing directory of JSON lines into the lake, after a small warm-up
    run on the same path."""
    warm = work / "warm"
    produce_sync(traffic(1), DirSink(warm), count=args.warmup_events)
    ingest_once(spark, IngestOptions(DirSource(warm), work / "lake-warm", work / "cp-warm"))
    landing = work / "landing"
    produce_sync(traffic(2), DirSink(landing, max_events_per_file=100_000), count=file_events)
    result = ingest_once(
        spark, IngestOptions(DirSource(landing), work / "lake-files", work / "cp-files")
    )
    return {"file_events": file_events, "file_events_per_s": round(result.events_per_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--file-events", type=int, default=None, help="default: --events")
    parser.add_argument("--partitions", type=int, default=2, help="Kafka topic partitions")
    parser.add_argument("--warmup-events", type=int, default=50_000)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--gc", choices=["parallel", "g1"], default="parallel", help="JVM GC")
    parser.add_argument("--repeats", type=int, default=5, help="tuned Kafka runs (median)")
    parser.add_argument(
        "--warmup-runs", type=int, default=5, help="unmeasured Kafka runs (JIT warm-up)"
    )
    parser.add_argument("--malformed-events", type=int, default=300_000)
    parser.add_argument("--malformed-fraction", type=float, default=0.005)
    parser.add_argument("--skip-untuned", action="store_true", help="skip the knob comparisons")
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument(
        "--jfr", type=Path, default=None, help="Java Flight Recording of the measured runs"
    )
    args = parser.parse_args()
    file_events = args.file_events if args.file_events is not None else args.events

    settings = Settings()
    out: dict[str, Any] = {"bench": "ingest", "events": args.events, "cores": os.cpu_count()}
    kafka_ok = bool(settings.kafka_bootstrap_servers and settings.spark_jars_dir)
    if args.skip_kafka or not kafka_ok:
        out["kafka_skipped"] = (
            "--skip-kafka"
            if args.skip_kafka
            else "RECFLOW_KAFKA_BOOTSTRAP_SERVERS / RECFLOW_SPARK_JARS_DIR not set"
        )
    use_kafka = "kafka_skipped" not in out
    work = Path(tempfile.mkdtemp(prefix="recflow-bench-ingest-"))
    try:
        spark = build_spark(
            SparkOptions(
                app_name="recflow-bench-ingest",
                driver_memory=args.driver_memory,
                var_dir=work / "var",
                jars_dir=Path(settings.spark_jars_dir) if use_kafka else None,
                kafka=use_kafka,
                gc=args.gc,
            )
        )
        out["gc"] = args.gc
        partitions = spark.conf.get("spark.sql.shuffle.partitions")
        out["shuffle_partitions"] = int(partitions or 0)

        if use_kafka:
            bootstrap = settings.kafka_bootstrap_servers
            topic = f"recflow-bench-{uuid.uuid4().hex[:8]}"
            ensure_topic(bootstrap, topic, partitions=args.partitions)
            sent = produce_sync(
                itertools.islice(traffic(3), args.events), KafkaSink(bootstrap, topic)
            )
            out["produce_per_s"] = round(sent.events_per_s)
            source = KafkaSource(bootstrap, topic, args.max_offsets_per_trigger)
            tuned = IngestOptions(source, work / "lake-kafka", work / "cp-kafka")
            # Warm the Kafka path too: the first passes over a large topic compile the hot code.
            # The rates of the warm-up runs, in order, show the JIT reaching its steady state.
            warmup = [ingest_once(spark, tuned).events_per_s for _ in range(args.warmup_runs)]
            out["warmup_runs"] = args.warmup_runs
            out["warmup_events_per_s_runs"] = [round(r) for r in warmup]
            if args.jfr:
                flight_recording(spark, "start", args.jfr)
            cpu_before = jvm_cpu_s(spark)
            runs = [ingest_once(spark, tuned) for _ in range(args.repeats)]
            cpu_s = jvm_cpu_s(spark) - cpu_before
            if args.jfr:
                flight_recording(spark, "stop", args.jfr)
            rates = sorted(r.events_per_s for r in runs)
            result = runs[0]
            out["events_per_s"] = round(statistics.median(rates))
            out["events_per_s_runs"] = [round(r) for r in rates]
            out["min_events_per_s"] = round(rates[0])
            # Less sensitive than the rates to other work on a shared machine.
            out["jvm_cpu_s_per_million"] = round(cpu_s * 1e6 / (args.events * args.repeats), 2)
            out["batches"] = result.batches
            out["state_memory_bytes"] = state_memory(result)
            out["valid"] = result.valid
            out["files_per_date_per_batch"] = files_per_partition()
            out["events_bytes"] = LAST_BYTES[0]
            if not args.skip_untuned:
                out.update(measure_knobs(spark, tuned, str(partitions), args))
                out.update(measure_cache(spark, bootstrap, work, args))
            # The landing directory after Kafka: a JVM whose hot code was compiled for one
            # source, like an ingestion worker's, gives the Kafka figure.
            out.update(measure_files(spark, work, args, file_events))
            spark.stop()
            perf = consumer_perf(topic, args.events)
            if perf is not None:
                out["kafka_consumer_perf_per_s"] = round(perf)
                out["spark_vs_consumer_perf"] = round(out["events_per_s"] / perf, 3)
            count_rate = aiokafka_count(bootstrap, topic, args.events)
            out["aiokafka_count_per_s"] = round(count_rate)
            out["spark_vs_aiokafka"] = round(out["events_per_s"] / count_rate, 3)
            delete_topic(bootstrap, topic)
        else:
            out.update(measure_files(spark, work, args, file_events))
        out["target_events_per_s"] = 150_000
        out["target_min_events_per_s"] = 120_000
        load = os.getloadavg()[0]
        out["load_avg_1m"] = round(load, 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
