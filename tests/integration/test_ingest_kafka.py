"""Kafka -> Spark -> lake against a real broker (scripts/services.sh up; eval its env)."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backend.lake import layout
from backend.lake import readers as lake
from backend.pipeline.ingest import IngestOptions, IngestResult, run_ingest
from backend.pipeline.sources import KafkaSource, SourceUnavailableError, check_source
from backend.pipeline.spark import SparkOptions, build_spark
from backend.streaming.producer import KafkaSink, ensure_topic, produce_sync
from backend.streaming.simulator import MALFORMED_KINDS, TrafficSpec, simulate_traffic
from tests.conftest import service_env

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class KafkaEnv:
    bootstrap: str
    jars_dir: Path


def kafka_env() -> KafkaEnv:
    """The broker and the connector jars (RECFLOW_KAFKA_BOOTSTRAP_SERVERS and
    RECFLOW_SPARK_JARS_DIR from ``scripts/services.sh env``), or a skip that says so."""
    return KafkaEnv(
        service_env("RECFLOW_KAFKA_BOOTSTRAP_SERVERS"),
        Path(service_env("RECFLOW_SPARK_JARS_DIR")),
    )


def create_topic(bootstrap: str, partitions: int = 3) -> str:
    """A new topic with a unique name (so runs never share offsets or checkpoints)."""
    name = f"recflow-test-{uuid.uuid4().hex[:10]}"
    assert ensure_topic(bootstrap, name, partitions=partitions)
    return name


def traffic(seed: int, n: int, malformed: float, duplicates: float) -> list[Any]:
    spec = TrafficSpec(
        seed=seed,
        users=300,
        step_ms=0,
        malformed_fraction=malformed,
        duplicate_fraction=duplicates,
    )
    return list(itertools.islice(simulate_traffic(spec), n))


@dataclass(frozen=True)
class SentTraffic:
    """A new topic holding simulated traffic, with what ingesting it must give."""

    topic: str
    valid_ids: set[str]  # the event ids that must reach the lake
    reasons: Counter[str]  # the quarantine reasons expected, with their counts
    duplicates: int


def produce_traffic(
    env: KafkaEnv, *, seed: int, n: int, malformed: float, duplicates: float
) -> SentTraffic:
    """Send ``n`` simulated events to a new topic (``traffic``)."""
    topic = create_topic(env.bootstrap)
    events = traffic(seed=seed, n=n, malformed=malformed, duplicates=duplicates)
    sent = produce_sync(events, KafkaSink(env.bootstrap, topic))
    assert sent.sent == n
    expected_valid = {
        json.loads(e.value)["event_id"]
        for e in events
        if e.expected_reason is None and not e.duplicate
    }
    expected_bad = Counter(e.expected_reason for e in events if e.expected_reason)
    return SentTraffic(topic, expected_valid, expected_bad, sent.duplicates)


@pytest.fixture(scope="module")
def env() -> KafkaEnv:
    return kafka_env()


@pytest.fixture(scope="module")
def spark(env: KafkaEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    session = build_spark(
        SparkOptions(
            var_dir=tmp_path_factory.mktemp("spark-var"), jars_dir=env.jars_dir, kafka=True
        )
    )
    yield session
    session.stop()


def test_kafka_to_lake_counts(env: KafkaEnv, spark: Any, tmp_path: Path) -> None:
    topic = create_topic(env.bootstrap)
    events = traffic(seed=11, n=3000, malformed=0.04, duplicates=0.02)
    sent = produce_sync(events, KafkaSink(env.bootstrap, topic))
    assert sent.sent == 3000
    opts = IngestOptions(
        source=KafkaSource(env.bootstrap, topic, max_offsets_per_trigger=1000),
        lake_dir=tmp_path / "lake",
        checkpoint_root=tmp_path / "checkpoints",
    )
    result = run_ingest(spark, opts)
    malformed = {k: v for k, v in sent.expected.items() if k != "valid"}
    assert set(malformed) == set(MALFORMED_KINDS)
    assert result.rows_in == 3000
    assert result.batches >= 3
    assert result.quarantined == malformed
    assert result.duplicates == sent.duplicates
    assert result.valid == sent.expected["valid"] - sent.duplicates
    events_in_lake = lake.read_events(opts.lake_dir)
    assert len(events_in_lake) == result.valid
    assert events_in_lake["event_id"].is_unique
    quarantine = lake.read_quarantine(opts.lake_dir)
    assert quarantine["source_ref"].str.startswith(f"{topic}/").all()

    # Nothing new: a second run reads nothing and writes nothing.
    again = run_ingest(spark, opts)
    assert (again.rows_in, again.valid) == (0, 0)


def test_broker_down_fails_fast_with_a_clear_error(spark: Any, tmp_path: Path) -> None:
    opts = IngestOptions(
        source=KafkaSource("127.0.0.1:1", "interactions", timeout_s=3),
        lake_dir=tmp_path / "lake",
        checkpoint_root=tmp_path / "checkpoints",
    )
    started = time.monotonic()
    with pytest.raises(SourceUnavailableError, match=r"127\.0\.0\.1:1.*scripts/kafka\.sh start"):
        run_ingest(spark, opts)
    assert time.monotonic() - started < 30


def test_missing_topic_is_a_clear_error(env: KafkaEnv) -> None:
    with pytest.raises(SourceUnavailableError, match="does not exist"):
        check_source(KafkaSource(env.bootstrap, f"missing-{uuid.uuid4().hex[:8]}"))


def test_ensure_topic_creates_once(env: KafkaEnv) -> None:
    name = create_topic(env.bootstrap, partitions=2)
    assert not ensure_topic(env.bootstrap, name, partitions=2)
    check_source(KafkaSource(env.bootstrap, name))


def kafka_script(command: str) -> None:
    """``scripts/kafka.sh stop|start``: the local broker, the one the tests use."""
    subprocess.run(["bash", str(REPO / "scripts" / "kafka.sh"), command], check=True, timeout=180)


class RestartSeen(logging.Handler):
    """Sets ``event`` when the ingestion logs that it restarts its query."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "restart" in record.getMessage():
            self.event.set()


@pytest.mark.slow
def test_ingestion_survives_a_broker_restart(env: KafkaEnv, spark: Any, tmp_path: Path) -> None:
    n, per_trigger = 4000, 250
    sent = produce_traffic(env, seed=31, n=n, malformed=0.03, duplicates=0.02)
    topic, expected_valid, expected_bad = sent.topic, sent.valid_ids, sent.reasons
    opts = IngestOptions(
        # Short client timeouts: Spark gives up on the stopped broker within seconds (with the
        # default it keeps retrying for most of a minute, and a shorter outage goes unnoticed).
        source=KafkaSource(env.bootstrap, topic, max_offsets_per_trigger=per_trigger, timeout_s=2),
        lake_dir=tmp_path / "lake",
        checkpoint_root=tmp_path / "checkpoints",
        restart_backoff_s=0.5,
        source_wait_s=90,
    )
    results: list[IngestResult] = []
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            results.append(run_ingest(spark, opts))
        except BaseException as exc:
            errors.append(exc)

    seen = RestartSeen()
    ingest_log = logging.getLogger("backend.pipeline.ingest")
    ingest_log.addHandler(seen)
    runner = threading.Thread(target=ingest, daemon=True)
    runner.start()
    committed = 0
    try:
        deadline = time.monotonic() + 120
        while committed < 2:
            assert runner.is_alive(), errors
            assert time.monotonic() < deadline, "no micro-batch committed within 120 s"
            time.sleep(0.1)
            committed = len(list((opts.lake_dir / layout.BATCHES).glob("*/*.json")))
        kafka_script("stop")
        # The broker stays down until the query has failed on it, so the outage really hits.
        assert seen.event.wait(60), "the ingestion query did not fail while the broker was down"
    finally:
        kafka_script("start")
        runner.join(timeout=180)
        ingest_log.removeHandler(seen)
    assert not runner.is_alive()
    assert not errors, errors
    result = results[0]
    assert committed < -(-n // per_trigger), "the broker stopped after the last batch"
    assert result.restarts >= 1
    assert result.rows_in == n
    assert result.valid == len(expected_valid)
    assert result.quarantined == dict(sorted(expected_bad.items()))
    assert result.duplicates == sent.duplicates
    assert [b.batch_id for b in result.batch_stats] == list(range(result.batches))
    events_in_lake = lake.read_events(opts.lake_dir)
    assert events_in_lake["event_id"].is_unique
    assert set(events_in_lake["event_id"]) == expected_valid
    quarantine = lake.read_quarantine(opts.lake_dir)
    assert Counter(quarantine["reason"]) == expected_bad
    assert quarantine["source_ref"].is_unique
