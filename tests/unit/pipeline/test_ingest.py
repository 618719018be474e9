"""The ingestion job on local Spark with the landing-directory source (one session per module)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backend.jsonable import to_jsonable
from backend.lake import layout
from backend.lake import readers as lake
from backend.pipeline import native
from backend.pipeline.compact import compact
from backend.pipeline.ingest import (
    IngestError,
    IngestOptions,
    IngestResult,
    run_ingest,
    stamp_batch,
)
from backend.pipeline.ingest.writer import BatchWriter
from backend.pipeline.sources import DirSource
from backend.pipeline.validation import canonical_pattern, with_validation
from backend.streaming.events import (
    Event,
    Rejected,
    ValidationRules,
    encode_event,
    now_ms,
)
from backend.streaming.validation import validate_event
from tests.unit.streaming.event_cases import DAY_MS, RULES, cases

pytestmark = pytest.mark.spark


def write_jsonl(landing: Path, name: str, lines: list[str]) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    tmp = landing / f".{name}.tmp"
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, landing / f"{name}.jsonl")


def valid_events(prefix: str, n: int, now: int) -> list[str]:
    """``n`` valid events over three event dates (today and the two days before)."""
    kinds = ("impression", "click", "rating")
    out = []
    for i in range(n):
        kind = kinds[i % 3]
        event = Event(
            event_id=f"{prefix}-{i}",
            user=f"u{i % 7}",
            item=f"i{i % 5}",
            type=kind,  # type: ignore[arg-type]
            ts=now - (i % 3) * DAY_MS,
            rating=float(1 + i % 5) if kind == "rating" else None,
            experiment="home" if kind != "rating" else None,
            variant=("A" if i % 2 else "B") if kind != "rating" else None,
        )
        out.append(encode_event(event).decode())
    return out


@dataclass
class World:
    root: Path
    landing: Path
    lake_dir: Path
    opts: IngestOptions
    result: IngestResult
    expected_reasons: Counter[str]
    cases: list[tuple[str, str | None, str | None]]
    valid_ids: set[str]
    stages: list[tuple[str, int, int, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture(scope="module")
def world(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("ingest")
    landing = root / "landing"
    now = now_ms()
    case_list = cases(now)
    first = valid_events("a", 30, now)
    write_jsonl(landing, "f1", first + [raw for raw, _, _ in case_list])
    # The second file repeats five events of the first: duplicates across micro-batches.
    write_jsonl(landing, "f2", first[:5] + valid_events("b", 10, now))
    opts = IngestOptions(
        source=DirSource(landing, max_files_per_trigger=1),
        lake_dir=root / "lake",
        checkpoint_root=root / "checkpoints",
        rules=RULES,
        repartition_by_date=True,
        cache_batches=True,
    )
    stages: list[tuple[str, int, int, dict[str, Any]]] = []
    result = run_ingest(spark, opts, on_stage=lambda *args: stages.append(args))
    valid_ids = {f"a-{i}" for i in range(30)} | {f"b-{i}" for i in range(10)}
    for raw, reason, _ in case_list:
        if reason is None:
            valid_ids.add(json.loads(raw)["event_id"])
    return World(
        root=root,
        landing=landing,
        lake_dir=opts.lake_dir,
        opts=opts,
        result=result,
        expected_reasons=Counter(reason for _, reason, _ in case_list if reason),
        cases=case_list,
        valid_ids=valid_ids,
        stages=stages,
    )


PATHS = {
    "jvm-parser": {"fast_path": True, "native": True},
    "regex": {"fast_path": True, "native": False},
    "variant-only": {"fast_path": False},
    # The checks against the clock behind a code generation boundary, as the ingestion runs them
    "jvm-parser-split": {
        "fast_path": True,
        "native": True,
        "before_clock": lambda frame: stamp_batch(frame).drop("ingested_at"),
    },
}


def test_the_session_has_the_jvm_parser(spark: Any) -> None:
    assert native.available(spark)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("binary", [False, True], ids=["text", "bytes"])
def test_spark_validation_matches_the_python_validator(spark: Any, path: str, binary: bool) -> None:
    from pyspark.sql import functions as F

    now = 1_700_000_000_000
    case_list = cases(now)
    frame = spark.createDataFrame([(raw,) for raw, _, _ in case_list], "value string")
    if binary:
        frame = frame.select(F.col("value").cast("binary").alias("value"))
    rows = (
        with_validation(
            frame, "value", now_ms=F.lit(now), rules=RULES, value_is_binary=binary, **PATHS[path]
        )
        .select("reason", "field", "user", "rating", "ts")
        .collect()
    )
    for (raw, reason, fld), row in zip(case_list, rows, strict=True):
        python = validate_event(raw, now=now, rules=RULES)
        assert (row["reason"], row["field"]) == (reason, fld), raw
        got = (python.reason, python.field) if isinstance(python, Rejected) else (None, None)
        assert got == (reason, fld)
        if isinstance(python, Event):
            assert (row["user"], row["rating"]) == (python.user, python.rating)
            assert round(row["ts"].timestamp() * 1000) == python.ts


def test_validation_expressions_are_built_once_per_arguments(
    spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyspark.sql import functions as F

    from backend.pipeline import validation

    monkeypatch.setattr(validation, "_PROJECTIONS", {})
    built: list[ValidationRules] = []
    real = validation._projections

    def counting(*args: Any) -> Any:
        built.append(args[2])
        return real(*args)

    monkeypatch.setattr(validation, "_projections", counting)
    now = 1_700_000_000_000
    record = json.dumps(
        {"schema_version": 1, "event_id": "e1", "user": "u1", "item": "i1", "type": "rating"}
        | {"ts": now, "rating": 7.0}
    )
    frame = spark.createDataFrame([(record,)], "value string")
    wide = ValidationRules(scale=(1.0, 10.0))

    def reason(rules: ValidationRules) -> Any:
        row = with_validation(frame, "value", now_ms=F.lit(now), rules=rules).first()
        assert row is not None
        return row["reason"]

    assert reason(RULES) == "rating_out_of_scale"
    assert reason(RULES) == "rating_out_of_scale"
    assert built == [RULES]  # the second call reused the expressions
    assert reason(wide) is None  # other rules, other expressions
    assert built == [RULES, wide]
    with_validation(frame, "value", now_ms=F.lit(now + 1), rules=wide)
    assert len(built) == 3  # another clock


def generated_code(frame: Any) -> list[str]:
    """The Java source Spark generates for each code-generated subtree of ``frame``'s plan."""
    subtrees = frame._jdf.queryExecution().debug().codegenToSeq()
    return [subtrees.apply(i)._2() for i in range(subtrees.size())]


def test_the_validation_code_is_the_same_in_every_micro_batch(spark: Any) -> None:
    from pyspark.sql import functions as F

    frame = spark.createDataFrame([(r,) for r in valid_events("cg", 2, now_ms())], "value string")

    def planned(before_clock: Any) -> list[str]:
        if before_clock is None:  # the batch timestamp inside the validation's code
            stamped = frame.withColumn("ingested_at", F.current_timestamp())
        else:
            stamped = frame
        checked = with_validation(
            stamped,
            "value",
            now_ms=F.unix_millis(F.col("ingested_at")),
            rules=RULES,
            before_clock=before_clock,
        )
        code = generated_code(checked)
        time.sleep(0.01)  # the next plan has another timestamp
        return code

    inline, inline_later = planned(None), planned(None)
    assert len(inline) == 1 and inline != inline_later  # recompiled in every batch
    split, split_later = planned(stamp_batch), planned(stamp_batch)
    assert len(split) == 2
    validation, clock = split
    assert split_later[0] == validation  # compiled once, the same class in every batch
    assert split_later[1] != clock  # only the small projection with the timestamp changes
    assert len(clock) < len(validation) / 5


def test_encoded_events_take_the_fast_path(spark: Any) -> None:
    from pyspark.sql import functions as F

    now = now_ms()
    records = [
        *valid_events("fast", 6, now),
        json.dumps(json.loads(valid_events("pretty", 1, now)[0]), indent=2),
    ]
    frame = spark.createDataFrame([(r,) for r in records], "value string")
    matched = frame.select(F.col("value").rlike(canonical_pattern()).alias("m")).collect()
    assert all(row["m"] for row in matched)


def test_valid_and_rejected_records_are_split_with_reasons(world: World) -> None:
    r = world.result
    assert r.batches == 2
    assert r.rows_in == 30 + len(world.cases) + 15
    assert r.valid == len(world.valid_ids)
    assert r.quarantined == dict(sorted(world.expected_reasons.items()))
    assert r.duplicates == 5
    assert r.rows_in == r.valid + r.quarantined_total + r.duplicates

    quarantine = lake.read_quarantine(world.lake_dir)
    assert Counter(quarantine["reason"]) == world.expected_reasons
    expected = {raw: (reason, fld) for raw, reason, fld in world.cases if reason}
    got = {row.raw: (row.reason, row.field) for row in quarantine.itertuples()}
    assert got == expected
    assert set(quarantine.columns) >= {"raw", "reason", "field", "source_ref", "ingested_at"}
    assert quarantine["source_ref"].str.endswith("f1.jsonl").all()


def test_lake_is_partitioned_by_event_date_without_duplicates(world: World) -> None:
    events = lake.read_events(world.lake_dir)
    assert len(events) == len(world.valid_ids)
    assert set(events["event_id"]) == world.valid_ids
    event_dates = pd.to_datetime(events["ts"], utc=True).dt.strftime("%Y-%m-%d")
    assert (events["dt"] == event_dates).all()
    partitions = {p.name for p in (world.lake_dir / "events").iterdir()}
    assert partitions == {f"dt={d}" for d in set(event_dates)}
    assert len(partitions) >= 3
    # One file per date and batch: the batch is repartitioned by date before writing.
    for part in (world.lake_dir / "events").iterdir():
        for batch_dir in part.iterdir():
            assert len(list(batch_dir.glob("*.parquet"))) == 1


def test_stage_callback_reports_each_batch(world: World) -> None:
    assert [s[0] for s in world.stages] == ["batch-0", "batch-1"]
    _, rows_in, rows_out, extra = world.stages[1]
    assert (rows_in, rows_out, extra["duplicates"]) == (15, 10, 5)
    assert {"durations_ms", "processed_rows_per_s", "state_rows_updated", "spark_tasks"} <= set(
        extra
    )
    assert extra["durations_ms"]["triggerExecution"] > 0


def test_lake_readers_on_an_ingested_lake(world: World) -> None:
    ratings = lake.read_ratings(world.lake_dir)
    assert set(ratings.columns) == {"user", "item", "rating", "timestamp"}
    assert ratings["rating"].between(1, 5).all()
    assert not ratings.duplicated(["user", "item"]).any()
    home = lake.read_experiment_events(world.lake_dir, "home")
    assert set(home["type"]) == {"impression", "click"}
    assert set(home["variant"]) == {"A", "B"}
    assert "home" in lake.list_experiments(world.lake_dir)


def test_tuning_off_writes_the_same_lake(spark: Any, world: World) -> None:
    untuned = replace(
        world.opts,
        lake_dir=world.root / "lake-untuned",
        checkpoint_root=world.root / "checkpoints-untuned",
        repartition_by_date=False,
        cache_batches=False,
        id_dictionaries=True,
    )
    result = run_ingest(spark, untuned)
    assert (result.valid, result.quarantined, result.duplicates) == (
        world.result.valid,
        world.result.quarantined,
        world.result.duplicates,
    )
    tuned = lake.read_events(world.lake_dir).drop(columns=["ingested_at"])
    other = lake.read_events(untuned.lake_dir).drop(columns=["ingested_at"])
    key = ["event_id"]
    assert (
        tuned.sort_values(key)
        .reset_index(drop=True)
        .equals(other.sort_values(key).reset_index(drop=True))
    )
    # Only the encoding differs: user and item ids with or without a dictionary (Parquet still
    # stores a small file's column plainly when a dictionary would not make it smaller).
    plain = {"plain"}
    assert column_encodings(world.lake_dir) == {"event_id": plain, "user": plain, "item": plain}
    encodings = column_encodings(untuned.lake_dir)
    assert encodings["event_id"] == plain
    assert "dictionary" in encodings["user"]
    assert "dictionary" in encodings["item"]


def column_encodings(lake_dir: Path) -> dict[str, set[str]]:
    """How the events table's files store ``event_id``, ``user`` and ``item``."""
    import pyarrow.parquet as pq

    seen: dict[str, set[str]] = {}
    files = sorted((lake_dir / layout.EVENTS).rglob("*.parquet"))
    assert files
    for path in files:
        meta = pq.ParquetFile(path).metadata
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            for i in range(row_group.num_columns):
                column = row_group.column(i)
                name = column.path_in_schema
                if name in ("event_id", "user", "item"):
                    dictionary = any("DICTIONARY" in e for e in column.encodings)
                    seen.setdefault(name, set()).add("dictionary" if dictionary else "plain")
    return seen


def drop_commit(commits: Path, batch_id: int) -> None:
    """Forget that Spark committed ``batch_id``, as if it crashed just before the commit."""
    (commits / str(batch_id)).unlink()
    (commits / f".{batch_id}.crc").unlink(missing_ok=True)


def test_restart_continues_from_the_checkpoint_and_replays_idempotently(
    spark: Any, world: World
) -> None:
    now = now_ms()
    first = valid_events("a", 30, now)
    write_jsonl(world.landing, "f3", first[5:10] + valid_events("c", 7, now))
    again = run_ingest(spark, world.opts)
    assert (again.rows_in, again.valid, again.duplicates, again.batches) == (12, 7, 5, 1)
    ids = world.valid_ids | {f"c-{i}" for i in range(7)}
    assert sorted(lake.read_events(world.lake_dir)["event_id"]) == sorted(ids)

    # A crash after the lake was written but before Spark's commit: the batch is replayed.
    commits = world.opts.checkpoint_dir / "commits"
    last = max(int(p.name) for p in commits.iterdir() if p.name.isdigit())
    drop_commit(commits, last)
    replay = run_ingest(spark, world.opts)
    assert [b.replayed for b in replay.batch_stats] == [True]
    assert sorted(lake.read_events(world.lake_dir)["event_id"]) == sorted(ids)

    # A crash half-way through publishing: partitions moved, no marker. The replay completes it.
    drop_commit(commits, last)
    markers = sorted((world.lake_dir / layout.BATCHES).glob("*/*.json"))
    markers[-1].unlink()
    replay = run_ingest(spark, world.opts)
    assert [b.replayed for b in replay.batch_stats] == [False]
    assert markers[-1].is_file()
    events = lake.read_events(world.lake_dir)
    assert sorted(events["event_id"]) == sorted(ids)

    # Compaction keeps every row, and ingestion goes on after it.
    files_before = len(list((world.lake_dir / "events").glob("dt=*/*/*.parquet")))
    result = compact(world.lake_dir, target_file_mb=32)
    assert result.files_before == files_before + len(
        list((world.lake_dir / "quarantine").glob("dt=*/*/*.parquet"))
    )
    assert len(list((world.lake_dir / "events").glob("dt=*/*/*.parquet"))) < files_before
    assert sorted(lake.read_events(world.lake_dir)["event_id"]) == sorted(ids)
    write_jsonl(world.landing, "f4", valid_events("d", 4, now))
    assert run_ingest(spark, world.opts).valid == 4
    assert len(lake.read_events(world.lake_dir)) == len(ids) + 4


def test_follow_mode_ingests_new_files_until_stopped(spark: Any, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    opts = IngestOptions(
        source=DirSource(landing),
        lake_dir=tmp_path / "lake",
        checkpoint_root=tmp_path / "checkpoints",
        trigger_interval=timedelta(milliseconds=500),
    )
    stop = threading.Event()
    results: list[IngestResult] = []
    runner = threading.Thread(
        target=lambda: results.append(run_ingest(spark, opts, follow=True, stop_event=stop))
    )
    runner.start()
    try:
        write_jsonl(landing, "live", valid_events("live", 9, now_ms()))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if list((opts.lake_dir / layout.BATCHES).glob("*/*.json")):
                break
            time.sleep(0.5)
    finally:
        stop.set()
        runner.join(timeout=120)
    assert not runner.is_alive()
    assert results[0].valid == 9
    assert len(lake.read_events(opts.lake_dir)) == 9
    shutil.rmtree(tmp_path)


KAFKA_TIMEOUT = (
    "org.apache.kafka.common.errors.TimeoutException: Timed out waiting for a node assignment."
)


def three_batches(root: Path, **kwargs: Any) -> IngestOptions:
    """A landing directory of three files (five valid events and one rejected each), one per
    micro-batch."""
    landing = root / "landing"
    now = now_ms()
    for i in range(3):
        write_jsonl(landing, f"f{i}", [*valid_events(f"r{i}", 5, now), "not json"])
    return IngestOptions(
        source=DirSource(landing, max_files_per_trigger=1),
        lake_dir=root / "lake",
        checkpoint_root=root / "checkpoints",
        restart_backoff_s=0.05,
        **kwargs,
    )


def test_a_transient_source_failure_restarts_the_query_and_counts_each_batch_once(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = three_batches(tmp_path)
    record = BatchWriter._record
    failed: list[int] = []

    def fail_once_after_publishing(self: BatchWriter, batch_id: int, counts: Any) -> None:
        # Batch 1 reaches the lake, then the batch fails before Spark commits it.
        record(self, batch_id, counts)
        if batch_id == 1 and not failed:
            failed.append(batch_id)
            raise RuntimeError(KAFKA_TIMEOUT)

    monkeypatch.setattr(BatchWriter, "_record", fail_once_after_publishing)
    result = run_ingest(spark, opts)
    assert failed == [1]
    assert result.restarts == 1
    assert to_jsonable(result.summary)["restarts"] == 1
    assert [(b.batch_id, b.replayed) for b in result.batch_stats] == [
        (0, False),
        (1, True),
        (2, False),
    ]
    assert (result.rows_in, result.valid, result.duplicates) == (18, 15, 0)
    assert result.quarantined == {"not_json": 3}
    events = lake.read_events(opts.lake_dir)
    assert len(events) == 15 and events["event_id"].is_unique
    assert len(lake.read_quarantine(opts.lake_dir)) == 3


def test_other_query_failures_end_the_run_at_once(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = three_batches(tmp_path)
    calls: list[int] = []

    def broken(self: BatchWriter, batch: Any, batch_id: int, *args: Any) -> int:
        calls.append(batch_id)
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(BatchWriter, "_write", broken)
    with pytest.raises(IngestError, match="the disk is on fire") as failed:
        run_ingest(spark, opts)
    assert calls == [0]
    # The message becomes the job's public error: the cause, without Spark's plan or a traceback.
    message = str(failed.value)
    assert "RuntimeError: the disk is on fire" in message
    assert "Traceback" not in message and "Streaming Query" not in message
    assert "File " not in message and "\n" not in message


def test_restarts_in_a_row_are_bounded(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = three_batches(tmp_path, max_restarts=2)
    calls: list[int] = []

    def unreachable(self: BatchWriter, batch: Any, batch_id: int, *args: Any) -> int:
        calls.append(batch_id)
        raise RuntimeError(KAFKA_TIMEOUT)

    monkeypatch.setattr(BatchWriter, "_write", unreachable)
    with pytest.raises(IngestError, match="on its source 3 times in a row"):
        run_ingest(spark, opts)
    assert calls == [0, 0, 0]
