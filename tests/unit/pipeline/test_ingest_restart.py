"""Restarting the ingestion query after a transient source failure: the decisions, without Spark."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from backend.jsonable import to_jsonable
from backend.pipeline.ingest import BatchStats, IngestError, IngestOptions, IngestResult, failures
from backend.pipeline.ingest.failures import failure_text, is_transient_source_error
from backend.pipeline.sources import KafkaSource, SourceUnavailableError

# What Spark 4.2 reports when the broker goes away while it plans a micro-batch (the offset
# reader gave up after its retries).
DRIVER_TIMEOUT = (
    "[STREAM_FAILED] Query [id = 10565623-0020-49b7-b026-6135cfb4cc40, runId = "
    "7a6e0a4e-cfa0-4d43-afd5-dd05a6cbe287] terminated with exception: "
    "org.apache.kafka.common.errors.TimeoutException: Timed out waiting for a node assignment. "
    "Call: listNodes SQLSTATE: XXKST"
)
# A task of the batch's Spark job failed while reading Kafka: the job runs inside foreachBatch,
# so the Java error comes back inside the Python traceback.
TASK_TIMEOUT = (
    "[STREAM_FAILED] Query [id = 1, runId = 2] terminated with exception: "
    "[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function in "
    "foreach batch sink. Reason: An exception was raised by the Python Proxy. Return Message: "
    'Traceback (most recent call last):\n  File "ingest.py", line 282, in __call__\n'
    "pyspark.errors.exceptions.captured.SparkException: Job aborted due to stage failure: "
    "Task 0 in stage 7.0 failed 1 times, most recent failure: Lost task 0.0 in stage 7.0 "
    "(TID 12) (192.0.2.2 executor driver): java.util.concurrent.TimeoutException: "
    "Cannot fetch record for offset 4410 in 120000 milliseconds"
)
USER_ERROR = (
    "[STREAM_FAILED] Query [id = 1, runId = 2] terminated with exception: "
    "[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function in "
    "foreach batch sink. Reason: An exception was raised by the Python Proxy. Return Message: "
    "Traceback (most recent call last):\nRuntimeError: the disk is on fire"
)


@pytest.mark.parametrize(
    "text",
    [
        DRIVER_TIMEOUT,
        TASK_TIMEOUT,
        "org.apache.kafka.common.errors.DisconnectException: null",
        "Caused by: org.apache.kafka.common.errors.NotLeaderOrFollowerException: For requests "
        "intended only for the leader, this error indicates that the broker is not the leader",
    ],
    ids=["driver-offsets", "task-fetch", "disconnect", "not-leader"],
)
def test_kafka_outages_are_transient(text: str) -> None:
    assert is_transient_source_error(text)


@pytest.mark.parametrize(
    "text",
    [
        USER_ERROR,
        "[PATH_NOT_FOUND] Path does not exist: file:/nowhere.",
        "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column named `evnt_id` cannot be resolved.",
        "java.lang.OutOfMemoryError: Java heap space",
        "org.apache.kafka.common.errors.SaslAuthenticationException: bad credentials",
        "org.apache.kafka.common.errors.TimeoutExceptionOfSomethingElse",
        "",
    ],
    ids=["user", "path", "column", "oom", "auth", "other-name", "empty"],
)
def test_other_failures_are_not(text: str) -> None:
    assert not is_transient_source_error(text)


def test_failure_text_follows_causes_and_drops_the_query_description() -> None:
    class Captured(Exception):
        def __init__(self, message: str, cause: BaseException | None = None) -> None:
            super().__init__(message)
            self._cause = cause

    java_cause = Captured("org.apache.kafka.common.errors.DisconnectException: null")
    exc = Captured(
        "[STREAM_FAILED] terminated with exception: boom\n=== Streaming Query ===\n"
        "Identifier: q\nLogical Plan:\n+- TimeoutException in a column name",
        java_cause,
    )
    text = failure_text(exc)
    assert text.splitlines() == [
        "[STREAM_FAILED] terminated with exception: boom",
        "org.apache.kafka.common.errors.DisconnectException: null",
    ]
    assert is_transient_source_error(text)

    try:
        try:
            raise OSError("org.apache.kafka.common.errors.NetworkException")
        except OSError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as outer:
        assert is_transient_source_error(failure_text(outer))


def batch(batch_id: int, valid: int, *, replayed: bool = False) -> BatchStats:
    return BatchStats(
        batch_id=batch_id,
        rows_in=valid + 3,
        valid=valid,
        quarantined={"not_json": 2},
        duplicates=1,
        duration_ms=10,
        replayed=replayed,
    )


def test_a_batch_run_twice_is_counted_once() -> None:
    result = IngestResult.from_batches(
        source="kafka-x",
        query_id="q",
        batches=[batch(0, 10), batch(1, 20), batch(1, 20, replayed=True), batch(2, 5)],
        duration_s=2.0,
        restarts=1,
    )
    assert [b.batch_id for b in result.batch_stats] == [0, 1, 2]
    assert result.batch_stats[1].replayed
    assert (result.batches, result.rows_in, result.valid, result.duplicates) == (3, 44, 35, 3)
    assert result.quarantined == {"not_json": 6}
    summary = to_jsonable(result.summary)
    assert summary["restarts"] == 1
    assert summary["quarantined_total"] == 6
    # The job's result: the totals without the per-batch details.
    assert summary == {
        "source": "kafka-x",
        "query_id": "q",
        "rows_in": 44,
        "valid": 35,
        "quarantined": {"not_json": 6},
        "quarantined_total": 6,
        "duplicates": 3,
        "batches": 3,
        "restarts": 1,
        "duration_s": 2.0,
        "events_per_s": 22.0,
    }


def options(tmp_path: Path, **kwargs: Any) -> IngestOptions:
    return IngestOptions(
        source=KafkaSource("127.0.0.1:1", "interactions", timeout_s=2),
        lake_dir=tmp_path / "lake",
        checkpoint_root=tmp_path / "checkpoints",
        **kwargs,
    )


def test_waiting_for_the_source_retries_until_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []

    def check(source: object) -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise SourceUnavailableError("still down")

    monkeypatch.setattr(failures, "check_source", check)
    opts = options(tmp_path, restart_backoff_s=0.05, source_wait_s=10)
    assert failures.await_source(opts, 1, None, RuntimeError("failed"))
    assert len(calls) == 3
    # The pause doubles: 0.05 s, then 0.1 s, then 0.2 s.
    assert calls[2] - calls[1] >= 0.15


def test_a_source_that_stays_down_ends_the_run(tmp_path: Path) -> None:
    opts = options(tmp_path, restart_backoff_s=0.05, source_wait_s=0.5)
    started = time.monotonic()
    with pytest.raises(IngestError, match=r"did not come back within 0.5 s.*127\.0\.0\.1:1"):
        failures.await_source(opts, 1, None, RuntimeError("failed"))
    assert time.monotonic() - started < 20


def test_a_stop_while_waiting_for_the_source_ends_the_wait(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    opts = replace(options(tmp_path), restart_backoff_s=30)
    started = time.monotonic()
    assert not failures.await_source(opts, 1, stop, RuntimeError("failed"))
    assert time.monotonic() - started < 1
