from __future__ import annotations

from pathlib import Path

import pytest

from backend.pipeline.spark import (
    SparkOptions,
    SparkSetupError,
    default_parallelism,
    spark_conf,
)


def test_shuffle_partitions_follow_the_cores() -> None:
    conf = spark_conf(SparkOptions(master="local[3]"))
    assert conf["spark.sql.shuffle.partitions"] == "3"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.ui.enabled"] == "false"
    assert spark_conf(SparkOptions(shuffle_partitions=200))["spark.sql.shuffle.partitions"] == "200"


@pytest.mark.parametrize(("master", "cores"), [("local[2]", 2), ("local[4,2]", 4), ("local", 1)])
def test_default_parallelism(master: str, cores: int) -> None:
    assert default_parallelism(master) == cores


def test_jars_dir_puts_every_jar_on_the_classpath(tmp_path: Path) -> None:
    for name in ("b.jar", "a.jar", "notes.txt"):
        (tmp_path / name).write_text("x")
    conf = spark_conf(SparkOptions(jars_dir=tmp_path, kafka=True))
    assert conf["spark.jars"] == f"{tmp_path / 'a.jar'},{tmp_path / 'b.jar'}"
    assert "spark.jars.packages" not in conf


def test_kafka_without_jars_dir_resolves_the_package(tmp_path: Path) -> None:
    conf = spark_conf(SparkOptions(kafka=True, var_dir=tmp_path))
    assert conf["spark.jars.packages"].startswith("org.apache.spark:spark-sql-kafka-0-10_2.13:")
    assert conf["spark.jars.ivy"] == str(tmp_path.resolve() / "ivy")


def test_missing_or_empty_jars_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SparkSetupError, match="does not exist"):
        spark_conf(SparkOptions(jars_dir=tmp_path / "nope"))
    with pytest.raises(SparkSetupError, match=r"no \.jar"):
        spark_conf(SparkOptions(jars_dir=tmp_path))


def test_the_garbage_collector_is_chosen_for_driver_and_executors(tmp_path: Path) -> None:
    parallel = spark_conf(SparkOptions(var_dir=tmp_path))
    g1 = spark_conf(SparkOptions(var_dir=tmp_path, gc="g1"))
    for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
        assert "-XX:+UseParallelGC" in parallel[key].split()
        assert "-XX:+UseG1GC" in g1[key].split() and "-XX:+UseParallelGC" not in g1[key]
