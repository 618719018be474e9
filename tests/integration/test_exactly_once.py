"""Exactly once from Kafka to the lake: kill -9 the ingestion mid-run, restart it, count.

The ingestion runs as a separate process (``recflow ingest``, configured by its environment as a
user would) in its own process group, so SIGKILL reaches the Python driver and its Spark JVM
together, as a crash or an OOM kill of the host would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from backend.lake import layout
from backend.lake import readers as lake
from tests.integration.test_ingest_kafka import KafkaEnv, kafka_env, produce_traffic

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
N = 20_000
PER_TRIGGER = 1_500


def ingest_command(*, follow: bool) -> list[str]:
    cmd = [sys.executable, "-m", "backend.cli", "ingest", "--source", "kafka", "--json"]
    return [*cmd, "--follow", "--trigger-s", "0.2"] if follow else cmd


def ingest_env(env: KafkaEnv, topic: str, root: Path) -> dict[str, str]:
    """Settings of the ingestion process: everything under ``root`` (the lake, checkpoints and
    job rows in SQLite), the test's broker and topic, and micro-batches of ``PER_TRIGGER``."""
    return {
        **os.environ,
        "RECFLOW_DATA_DIR": str(root),
        "RECFLOW_KAFKA_BOOTSTRAP_SERVERS": env.bootstrap,
        "RECFLOW_KAFKA_TOPIC": topic,
        "RECFLOW_SPARK_JARS_DIR": str(env.jars_dir),
        "RECFLOW_SPARK_MAX_OFFSETS_PER_TRIGGER": str(PER_TRIGGER),
    }


def committed_batches(lake_dir: Path) -> int:
    return len(list((lake_dir / layout.BATCHES).glob("*/*.json")))


def batch_in_flight(checkpoint_root: Path) -> bool:
    """Whether Spark has planned a batch (offset log) that it has not committed yet."""

    def last(log: str) -> int:
        ids = [int(p.name) for p in checkpoint_root.glob(f"*/{log}/*") if p.name.isdigit()]
        return max(ids, default=-1)

    return last("offsets") > last("commits")


def test_kill_minus_nine_and_restart_gives_exactly_once(tmp_path: Path) -> None:
    env = kafka_env()
    sent = produce_traffic(env, seed=21, n=N, malformed=0.01, duplicates=0.01)
    topic, expected_valid, expected_bad = sent.topic, sent.valid_ids, sent.reasons

    log = (tmp_path / "follow.log").open("w")
    proc = subprocess.Popen(
        ingest_command(follow=True),
        cwd=REPO,
        env=ingest_env(env, topic, tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the driver JVM is killed with it
    )
    try:
        deadline = time.monotonic() + 240
        # Kill while a batch is planned but not committed, so the restart must replay it.
        while committed_batches(tmp_path / "lake") < 2 or not batch_in_flight(
            tmp_path / "checkpoints"
        ):
            assert proc.poll() is None, (tmp_path / "follow.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no micro-batch committed within 240 s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
    done_before_kill = committed_batches(tmp_path / "lake")
    assert done_before_kill < -(-N // PER_TRIGGER), "the kill came after the last batch"

    rerun = subprocess.run(
        ingest_command(follow=False),
        cwd=REPO,
        env=ingest_env(env, topic, tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["batches"] >= 1

    events_in_lake = lake.read_events(tmp_path / "lake")
    assert len(events_in_lake) == len(expected_valid)
    assert events_in_lake["event_id"].is_unique
    assert set(events_in_lake["event_id"]) == expected_valid
    quarantine = lake.read_quarantine(tmp_path / "lake")
    assert Counter(quarantine["reason"]) == expected_bad
    assert quarantine["source_ref"].is_unique
