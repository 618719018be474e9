"""The JVM event parser: how it is built, and that every validation path agrees with Python's.

The differential test mutates canonical records at random (seeded) and checks that the three
Spark paths (JVM parser, regex + ``from_json``, VARIANT only) give each record the reason, field
and typed values the Python validator gives it.
"""

from __future__ import annotations

import json
import logging
import random
import stat
from pathlib import Path
from typing import Any

import pytest

from backend.pipeline import native
from backend.pipeline.spark import SparkOptions, spark_conf
from backend.pipeline.validation import with_validation
from backend.streaming.events import (
    EVENT_ID_MAX_LENGTH,
    EVENT_TYPES,
    FIELD_NAMES,
    FIELDS,
    Event,
    Rejected,
    encode_event,
)
from backend.streaming.validation import validate_event
from tests.unit.streaming.event_cases import DAY_MS, RULES

NOW = 1_700_000_000_000
pytestmark = pytest.mark.spark


def test_the_contract_spec_lists_every_field_in_order() -> None:
    entries = [entry.split("|") for entry in native.contract_spec().split(";")]
    assert [e[0] for e in entries] == list(FIELD_NAMES)
    for (_, kind, required, rule), spec in zip(entries, FIELDS, strict=True):
        assert kind == spec.kind[0]
        assert required == str(int(spec.required))
        if spec.name == "model_version":
            assert rule == "id:64:A-Za-z0-9._-:A-Za-z0-9"
        elif spec.id_like:
            assert rule == f"id:{spec.max_length}:A-Za-z0-9_-"
        elif spec.kind == "string" and spec.max_length is not None:
            # The parser checks the length, so canonical records skip Spark's length check.
            assert rule == f"len:{spec.max_length}"
    assert dict((e[0], e[3]) for e in entries)["type"] == "e:" + "/".join(EVENT_TYPES)
    assert dict((e[0], e[3]) for e in entries)["schema_version"] == "=1"


def test_the_jar_is_compiled_once_and_cached(tmp_path: Path) -> None:
    first = native.build_jar(tmp_path)
    assert first is not None and first.name == native.jar_name()
    built = first.stat().st_mtime_ns
    # A second build finds the cached jar and does not need javac at all.
    again = native.build_jar(tmp_path, javac="/nonexistent/javac")
    assert again == first and first.stat().st_mtime_ns == built
    assert not list(tmp_path.glob(".build-*"))


def test_without_javac_there_is_no_jar_and_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(native, "find_javac", lambda: None)
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert native.build_jar(tmp_path) is None
    assert "no javac found" in caplog.text
    assert not list(tmp_path.iterdir())


def test_a_failing_compiler_gives_no_jar_and_its_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    javac = tmp_path / "javac"
    javac.write_text("#!/bin/sh\necho 'error: broken compiler' >&2\nexit 2\n")
    javac.chmod(javac.stat().st_mode | stat.S_IEXEC)
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert native.build_jar(tmp_path / "cache", javac=str(javac)) is None
    assert "broken compiler" in caplog.text
    assert not list((tmp_path / "cache").glob("*.jar"))


def test_the_jar_goes_on_the_spark_classpath(tmp_path: Path) -> None:
    jar = tmp_path / "parser.jar"
    conf = spark_conf(SparkOptions(var_dir=tmp_path), jar)
    assert conf["spark.jars"].split(",")[0] == str(jar.resolve())
    assert "spark.jars" not in spark_conf(SparkOptions(var_dir=tmp_path))


def test_a_local_master_with_the_jar_uses_the_local_file_system_without_forks(
    tmp_path: Path,
) -> None:
    jar = tmp_path / "parser.jar"
    conf = spark_conf(SparkOptions(var_dir=tmp_path), jar)
    assert conf["spark.hadoop.fs.file.impl"] == "recflow.spark.DirectLocalFileSystem"
    assert conf["spark.hadoop.fs.AbstractFileSystem.file.impl"] == "recflow.spark.DirectLocalFs"
    assert conf["spark.driver.extraClassPath"] == str(jar.resolve())
    # Without the jar, or on a cluster (whose executors load jars later), Hadoop's own.
    assert "spark.hadoop.fs.file.impl" not in spark_conf(SparkOptions(var_dir=tmp_path))
    cluster = spark_conf(SparkOptions(master="spark://127.0.0.1:7077", var_dir=tmp_path), jar)
    assert "spark.hadoop.fs.file.impl" not in cluster


def test_the_local_file_system_sets_permissions_and_sees_links_as_hadoop_does(
    spark: Any, tmp_path: Path
) -> None:
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    hadoop = jvm.org.apache.hadoop.fs
    local = hadoop.FileSystem.getLocal(conf)
    assert local.getRaw().getClass().getName() == "recflow.spark.DirectLocalFileSystem$Raw"
    context = hadoop.FileContext.getLocalFSFileContext(conf)
    assert "DirectLocalFs" in context.getDefaultFileSystem().getClass().getName()

    target = tmp_path / "dir" / "file.txt"
    mode = jvm.org.apache.hadoop.fs.permission.FsPermission.createImmutable(0o640)
    local.mkdirs(
        hadoop.Path(str(target.parent)),
        jvm.org.apache.hadoop.fs.permission.FsPermission.createImmutable(0o750),
    )
    local.getRaw().create(hadoop.Path(str(target)), mode, False, 4096, 1, 1 << 20, None).close()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o750

    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert local.getRaw().getFileLinkStatus(hadoop.Path(str(link))).isSymlink()
    assert not local.getRaw().getFileLinkStatus(hadoop.Path(str(target))).isSymlink()
    renamed = tmp_path / "dir" / "renamed.txt"
    rename = jvm.org.apache.hadoop.fs.Options.Rename
    overwrite = spark.sparkContext._gateway.new_array(rename, 1)
    overwrite[0] = rename.OVERWRITE
    context.rename(hadoop.Path(str(target)), hadoop.Path(str(renamed)), overwrite)
    assert renamed.is_file() and not target.exists()


def canonical_records(rng: random.Random, n: int) -> list[str]:
    out = []
    for i in range(n):
        kind = rng.choice(EVENT_TYPES)
        in_experiment = rng.random() < 0.5
        event = Event(
            event_id=f"ev-{i}-{rng.randrange(10**9)}",
            user=f"u{rng.randrange(1000)}",
            item=f"i_{rng.randrange(500)}",
            type=kind,
            ts=NOW - rng.randrange(40 * DAY_MS),
            rating=rng.choice([1.0, 2.5, 4.0, 5.0, 3.25]) if kind == "rating" else None,
            experiment="home-page" if in_experiment else None,
            variant=rng.choice("AB") if in_experiment else None,
            source=rng.choice([None, "simulator"]),
            sent_at=rng.choice([None, NOW]),
            recommendation_id=rng.choice([None, f"rec-{rng.randrange(10**6)}"]),
            model_version=rng.choice([None, "als-v3", "2026.11.30_b", "M"]),
        )
        out.append(encode_event(event).decode())
    return out


# Fragments that move a record across the boundaries the parsers draw.
_TOKENS = [
    " ", "\n", ",", ":", "{", "}", "[", "]", '"', "\\", "\\n", "\\u0041", "null", "true",
    '"model_version":".v"', '"recommendation_id":"r.1"', "model_version",
    "-", "0", "9", ".", "e5", "1e400", "00", "123456789012345678", "1234567890123456789",
    '"x"', "é", "\t", "ts", "rating", '"type":"view"', '"extra":1', "/", "_", "AZ",
]  # fmt: skip


def mutate(rng: random.Random, record: str) -> str:
    """One random edit: delete, insert a token, replace a span, reorder or re-space fields."""
    choice = rng.randrange(6)
    if choice == 0:  # delete a span
        i = rng.randrange(len(record))
        return record[:i] + record[i + rng.randint(1, 6) :]
    if choice == 1:  # insert a token
        i = rng.randrange(len(record) + 1)
        return record[:i] + rng.choice(_TOKENS) + record[i:]
    if choice == 2:  # replace a span with a token
        i = rng.randrange(len(record))
        return record[:i] + rng.choice(_TOKENS) + record[i + rng.randint(1, 4) :]
    obj = json.loads(record)
    if choice == 3:  # fields out of order
        keys = list(obj)
        rng.shuffle(keys)
        return json.dumps({k: obj[k] for k in keys})
    if choice == 4:  # another value for one field
        key = rng.choice(list(obj))
        obj[key] = rng.choice(
            [None, 0, -1, 2**63, 1.5, "", "a b", "ok", "a.b", "_x", [1], {"a": 1}, True]
        )
        return json.dumps(obj)
    return json.dumps(
        obj, indent=rng.choice([None, 1, 2]), separators=rng.choice([None, (",", ":")])
    )


def test_every_validation_path_agrees_with_python_on_mutated_records(spark: Any) -> None:
    from pyspark.sql import functions as F

    rng = random.Random(20261128)
    base = canonical_records(rng, 300)
    records = base + [mutate(rng, rng.choice(base)) for _ in range(2700)]
    frame = spark.createDataFrame([(r,) for r in records], "value string")
    assert native.available(spark)
    paths = {
        "jvm-parser": {"fast_path": True, "native": True},
        "regex": {"fast_path": True, "native": False},
        "variant-only": {"fast_path": False},
    }
    expected = [validate_event(r, now=NOW, rules=RULES) for r in records]
    for name, flags in paths.items():
        rows = (
            with_validation(frame, "value", now_ms=F.lit(NOW), rules=RULES, **flags)
            .select("reason", "field", *[n for n in FIELD_NAMES if n not in ("ts", "sent_at")])
            .collect()
        )
        for raw, want, row in zip(records, expected, rows, strict=True):
            if isinstance(want, Rejected):
                assert (row["reason"], row["field"]) == (want.reason, want.field), (name, raw)
                continue
            assert row["reason"] is None, (name, raw, row["reason"])
            for key in (
                "event_id", "user", "item", "type", "rating", "experiment", "variant",
                "recommendation_id", "model_version",
            ):  # fmt: skip
                assert row[key] == getattr(want, key), (name, raw, key)
    # The JVM parser took the canonical records (and the mutations that stayed canonical).
    parsed = frame.select(native.parse(F.col("value").cast("binary")).alias("j"))
    taken = parsed.filter(F.col("j").isNotNull()).count()
    assert len(base) <= taken < len(records)
    outcomes = {w.reason if isinstance(w, Rejected) else None for w in expected}
    assert len(outcomes) >= 8  # the mutations reach many reasons, not just not_json


def test_the_parser_reads_exactly_what_from_json_reads(spark: Any) -> None:
    from pyspark.sql import functions as F

    rng = random.Random(7)
    records = canonical_records(rng, 200)
    records += [json.dumps(json.loads(r), indent=2) for r in records[:20]]
    records.append(
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"rating",'
        '"rating":-0.000000000000001,"ts":-0,"sent_at":999999999999999999}'
    )
    frame = spark.createDataFrame([(r,) for r in records], "value string")
    schema = ", ".join(
        f"`{s.name}` {dict(string='string', integer='bigint', number='double')[s.kind]}"
        for s in FIELDS
    )
    got = frame.select(native.parse(F.col("value").cast("binary")).alias("j")).collect()
    want = frame.select(F.from_json("value", schema).alias("j")).collect()
    assert all(g["j"] is not None for g in got)
    assert [g["j"] for g in got] == [w["j"] for w in want]


@pytest.mark.parametrize(
    "record",
    [
        '{"schema_version":1,"event_id":"e\\u0041","user":"u","item":"i","type":"view","ts":1}',
        '{"schema_version":1,"event_id":"é","user":"u","item":"i","type":"view","ts":1}',
        '{"event_id":"e","schema_version":1,"user":"u","item":"i","type":"view","ts":1}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"view","ts":1,}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"view","ts":1.0}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"view","ts":01}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"view","ts":1} x',
        '{"schema_version":2,"event_id":"e","user":"u","item":"i","type":"view","ts":1}',
        '{"schema_version":1,"event_id":"e","user":"u v","item":"i","type":"view","ts":1}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"hover","ts":1}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"view"}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"view","ts":1,"x":1}',
        '{"schema_version":1,"event_id":"e","user":"","item":"i","type":"view","ts":1}',
        '{"schema_version":1,"event_id":"","user":"u","item":"i","type":"view","ts":1}',
        '{"schema_version":1,"event_id":"' + "e" * (EVENT_ID_MAX_LENGTH + 1) + '","user":"u",'
        '"item":"i","type":"view","ts":1}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"view",'
        '"model_version":"-v1","ts":1}',
        '{"schema_version":1,"event_id":"e","user":"u","item":"i","type":"view",'
        '"recommendation_id":"r.1","ts":1}',
        "[]",
        "",
    ],
)
def test_records_off_the_canonical_shape_are_left_to_the_exact_path(
    spark: Any, record: str
) -> None:
    from pyspark.sql import functions as F

    frame = spark.createDataFrame([(record,)], "value string")
    row = frame.select(native.parse(F.col("value").cast("binary")).alias("j")).first()
    assert row is not None and row["j"] is None
    # ...where it is judged as Python judges it.
    checked = with_validation(frame, "value", now_ms=F.lit(NOW), rules=RULES).first()
    want = validate_event(record, now=NOW, rules=RULES)
    assert checked is not None
    if isinstance(want, Rejected):
        assert (checked["reason"], checked["field"]) == (want.reason, want.field)
    else:
        assert checked["reason"] is None
