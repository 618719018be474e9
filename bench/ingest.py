"""Ingestion throughput: Kafka -> Spark (validation + dedupe) -> Parquet lake, and the baselines.

Prints ONE JSON line:

* ``events_per_s``: the tuned ingestion of ``--events`` simulated events from Kafka, availableNow
  (wall time of the query: start, all micro-batches, stop) on a warm JVM;
* ``untuned_events_per_s``: the same with the tuning off (200 shuffle partitions, no repartition
  by date, no caching of the batch);
* ``kafka_consumer_perf_per_s``: Kafka's own ConsumerPerformance on the same topic
  (``scripts/kafka.sh perf``), the ceiling for reading it;
* ``aiokafka_count_per_s``: a Python aiokafka consumer that only counts the records;
* ``file_events_per_s``: the embedded mode (landing directory of JSON lines -> lake);
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
from backend.pipeline.spark import SparkOptions, build_spark  # noqa: E402
from backend.streaming.producer import DirSink, KafkaSink, ensure_topic, produce_sync  # noqa: E402
from backend.streaming.simulator import TrafficSpec, simulate_traffic  # noqa: E402


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
    result = run_ingest(spark, opts)
    shutil.rmtree(opts.lake_dir, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--file-events", type=int, default=None, help="default: --events")
    parser.add_argument("--partitions", type=int, default=2, help="Kafka topic partitions")
    parser.add_argument("--warmup-events", type=int, default=50_000)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--skip-untuned", action="store_true")
    parser.add_argument("--skip-kafka", action="store_true")
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
            )
        )
        partitions = spark.conf.get("spark.sql.shuffle.partitions")
        out["shuffle_partitions"] = int(partitions or 0)

        # Warm the JVM (class loading, code generation) on a small landing directory.
        warm = work / "warm"
        produce_sync(traffic(1), DirSink(warm), count=args.warmup_events)
        ingest_once(
            spark,
            IngestOptions(DirSource(warm), work / "lake-warm", work / "cp-warm"),
        )

        landing = work / "landing"
        produce_sync(traffic(2), DirSink(landing, max_events_per_file=100_000), count=file_events)
        file_result = ingest_once(
            spark, IngestOptions(DirSource(landing), work / "lake-files", work / "cp-files")
        )
        out["file_events"] = file_events
        out["file_events_per_s"] = round(file_result.events_per_s)

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
            result = ingest_once(spark, tuned)
            out["events_per_s"] = round(result.events_per_s)
            out["batches"] = result.batches
            out["valid"] = result.valid
            if not args.skip_untuned:
                spark.conf.set("spark.sql.shuffle.partitions", "200")
                untuned = replace(
                    tuned,
                    lake_dir=work / "lake-untuned",
                    checkpoint_root=work / "cp-untuned",
                    repartition_by_date=False,
                    cache_batches=False,
                )
                slow = ingest_once(spark, untuned)
                spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
                out["untuned_events_per_s"] = round(slow.events_per_s)
                out["tuning_speedup"] = round(result.events_per_s / slow.events_per_s, 2)
            spark.stop()
            perf = consumer_perf(topic, args.events)
            if perf is not None:
                out["kafka_consumer_perf_per_s"] = round(perf)
                out["spark_vs_consumer_perf"] = round(result.events_per_s / perf, 3)
            count_rate = aiokafka_count(bootstrap, topic, args.events)
            out["aiokafka_count_per_s"] = round(count_rate)
            out["spark_vs_aiokafka"] = round(result.events_per_s / count_rate, 2)
            delete_topic(bootstrap, topic)
        out["target_events_per_s"] = 100_000
        load = os.getloadavg()[0]
        out["load_avg_1m"] = round(load, 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
