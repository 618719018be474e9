"""Check that pyspark can read the local Kafka broker with the connector jars.

Produces N messages with aiokafka to a fresh topic, then reads the topic back
in a Spark batch query (``spark.read.format("kafka")``, local[2]) with
``spark.jars`` set to the jars from scripts/spark-kafka-jars.sh, and checks the
count and the per-key counts. Exit status 0 on success.

    .venv/bin/python scripts/check-spark-kafka.py [--bootstrap HOST:PORT] [-n 500]

The jar directory comes from --jars-dir, else $RECFLOW_SPARK_JARS_DIR, else
scripts/spark-kafka-jars.sh is run to resolve it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import glob
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

SCRIPTS = Path(__file__).resolve().parent


def jars_dir(explicit: str | None) -> str:
    if explicit:
        return explicit
    env = os.environ.get("RECFLOW_SPARK_JARS_DIR")
    if env:
        return env
    out = subprocess.run(
        ["bash", str(SCRIPTS / "spark-kafka-jars.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


async def produce(bootstrap: str, topic: str, n: int, partitions: int) -> collections.Counter[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    keys: collections.Counter[str] = collections.Counter()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for i in range(n):
            key = f"user-{i % 7}"
            keys[key] += 1
            await producer.send(topic, key=key.encode(), value=f'{{"i": {i}}}'.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return keys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--bootstrap",
        default=os.environ.get("RECFLOW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
    )
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--jars-dir", default=None)
    args = ap.parse_args()

    jdir = jars_dir(args.jars_dir)
    jars = sorted(glob.glob(os.path.join(jdir, "*.jar")))
    if not any("spark-sql-kafka" in os.path.basename(j) for j in jars):
        print(f"FAIL: no spark-sql-kafka jar in {jdir}", file=sys.stderr)
        return 1

    topic = f"recflow-spark-check-{uuid.uuid4().hex[:8]}"
    expected = asyncio.run(produce(args.bootstrap, topic, args.n, args.partitions))

    # a loopback-only machine: keep Spark from guessing another interface
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    t0 = time.perf_counter()
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("recflow-check-spark-kafka")
        .config("spark.jars", ",".join(jars))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    try:
        df = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", args.bootstrap)
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            .option("endingOffsets", "latest")
            .load()
        )
        total = df.count()
        by_key = {
            r["k"]: r["c"]
            for r in df.select(F.col("key").cast("string").alias("k"))
            .groupBy("k")
            .agg(F.count("*").alias("c"))
            .collect()
        }
        partitions = df.select("partition").distinct().count()
    finally:
        spark.stop()
    elapsed = time.perf_counter() - t0

    if total != args.n or by_key != dict(expected):
        print(
            f"FAIL: spark read {total} messages (expected {args.n}); "
            f"by key {by_key} != {dict(expected)}",
            file=sys.stderr,
        )
        return 1
    print(
        f"OK: spark read {total} messages from {topic} ({partitions} partitions) "
        f"via {args.bootstrap} in {elapsed:.1f}s using {len(jars)} jars from {jdir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
