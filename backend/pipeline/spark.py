"""Building the Spark session every Recflow Spark job uses.

Defaults fit one small machine: ``local[N]``, shuffle partitions sized to the cores instead of
Spark's 200 (which on 2 cores turns every shuffle into 200 tiny tasks), the UI off, the session
time zone UTC (event dates in the lake are UTC dates), and Ivy, warehouse and scratch directories
under a given ``var`` directory rather than the home directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The Kafka connector matching the bundled pyspark (Scala 2.13), for ``spark.jars.packages``.
KAFKA_PACKAGE = "org.apache.spark:spark-sql-kafka-0-10_2.13:{version}"

StateStore = Literal["rocksdb", "hdfs"]
GarbageCollector = Literal["parallel", "g1"]
_GC_FLAGS = {"parallel": "-XX:+UseParallelGC", "g1": "-XX:+UseG1GC"}
STATE_PROVIDERS = {
    "rocksdb": "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
    "hdfs": "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
}


class SparkSetupError(RuntimeError):
    """The Spark session could not be configured as asked (bad jars directory, no Java...)."""


@dataclass(frozen=True)
class SparkOptions:
    """How to build the session.

    ``shuffle_partitions=None`` uses the number of cores of a ``local[N]`` master (or
    ``os.cpu_count()``). ``jars_dir`` is a directory of jars (e.g. the Kafka connector resolved by
    ``scripts/spark-kafka-jars.sh``) put on ``spark.jars``; without it, ``kafka=True`` resolves the
    connector with ``spark.jars.packages`` from Maven Central into ``var_dir/ivy``.
    ``state_store`` picks the streaming state store provider: RocksDB keeps large dedupe state off
    the JVM heap; ``hdfs`` is Spark's in-memory default. A checkpoint keeps the provider it was
    created with. ``native_parser`` compiles (once) and ships the JVM parser of canonical event
    records that validation uses when present (``backend.pipeline.native``); it is cached in
    ``var_dir/native``. ``gc`` picks the JVM's garbage collector: the parallel collector gave
    1.2x the ingestion throughput of G1 (Java's default) and steadier batch times, at the price
    of longer pauses, which batch jobs do not mind. ``executor_memory`` sizes each executor on a
    cluster master (Spark's default is 1g; a ``local`` master runs its tasks in the driver).
    ``extra`` is passed through as ``spark.*`` settings last.
    """

    master: str = "local[2]"
    app_name: str = "recflow"
    driver_memory: str = "2g"
    executor_memory: str | None = None
    shuffle_partitions: int | None = None
    var_dir: Path = Path("var")
    jars_dir: Path | None = None
    kafka: bool = False
    ui: bool = False
    state_store: StateStore = "rocksdb"
    log_level: str = "WARN"
    native_parser: bool = True
    gc: GarbageCollector = "parallel"
    extra: dict[str, str] = field(default_factory=dict)


def default_parallelism(master: str) -> int:
    """The cores a ``local[N]``/``local[*]`` master uses; ``os.cpu_count()`` for other masters."""
    if master == "local":
        return 1
    if master.startswith("local"):
        inside = master[len("local") :].strip("[]").split(",")[0]
        if inside.isdigit():
            return max(1, int(inside))
    return os.cpu_count() or 2


def jars_in(directory: Path) -> list[Path]:
    """All ``*.jar`` files in ``directory``, sorted; a clear error when there are none."""
    if not directory.is_dir():
        raise SparkSetupError(
            f"the Spark jars directory {directory} does not exist; run "
            "scripts/spark-kafka-jars.sh to resolve the Kafka connector, or leave it unset to "
            "download it from Maven Central"
        )
    jars = sorted(directory.glob("*.jar"))
    if not jars:
        raise SparkSetupError(f"the Spark jars directory {directory} contains no .jar files")
    return jars


_JIT_HUGE = "-XX:-DontCompileHugeMethods"


def spark_conf(opts: SparkOptions, native_jar: Path | None = None) -> dict[str, str]:
    """The ``spark.*`` settings ``build_spark`` applies, as a dict (inspectable without a JVM).

    ``native_jar`` is the event parser's jar (``native.build_jar``), added to ``spark.jars``.
    """
    import pyspark

    var = opts.var_dir.resolve()
    partitions = opts.shuffle_partitions or default_parallelism(opts.master)
    conf: dict[str, str] = {
        "spark.driver.memory": opts.driver_memory,
        "spark.sql.shuffle.partitions": str(partitions),
        "spark.default.parallelism": str(default_parallelism(opts.master)),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": str(opts.ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str(var / "spark-warehouse"),
        "spark.local.dir": str(var / "spark-tmp"),
        "spark.jars.ivy": str(var / "ivy"),
        # HotSpot never compiles a method over 8000 bytes of bytecode; the validation's
        # generated code has such methods, which then run interpreted: validation 1.7x slower.
        "spark.driver.extraJavaOptions": (
            f"-Dderby.system.home={var / 'derby'} {_JIT_HUGE} {_GC_FLAGS[opts.gc]}"
        ),
        "spark.executor.extraJavaOptions": f"{_JIT_HUGE} {_GC_FLAGS[opts.gc]}",
        "spark.sql.streaming.stateStore.providerClass": STATE_PROVIDERS[opts.state_store],
        # Keep enough progress reports for an availableNow run of many small batches.
        "spark.sql.streaming.numRecentProgressUpdates": "1000",
        # No empty micro-batch just to evict expired state: it costs a full batch round trip.
        "spark.sql.streaming.noDataMicroBatches.enabled": "false",
        # Parquet files in the lake are compressed with zstd: smaller than snappy, fast to read.
        "spark.sql.parquet.compression.codec": "zstd",
        # Standard Parquet timestamps (UTC-adjusted micros), not the legacy INT96.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }
    if opts.executor_memory is not None:
        conf["spark.executor.memory"] = opts.executor_memory
    if opts.state_store == "rocksdb":
        conf["spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled"] = "true"
        # Counting the total rows costs a lookup before every write: 1.3x ingestion throughput.
        conf["spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows"] = "false"
    jars = [native_jar] if native_jar is not None else []
    if opts.jars_dir is not None:
        jars += jars_in(opts.jars_dir)
    if jars:
        conf["spark.jars"] = ",".join(str(p.resolve()) for p in jars)
    if native_jar is not None and opts.master.startswith("local"):
        from backend.pipeline.native import local_fs_conf

        conf.update(local_fs_conf(native_jar))
    if opts.jars_dir is None and opts.kafka:
        conf["spark.jars.packages"] = KAFKA_PACKAGE.format(version=pyspark.__version__)
    conf.update(opts.extra)
    return conf


def build_spark(opts: SparkOptions) -> SparkSession:
    """Start (or reuse) the Spark session described by ``opts``.

    Spark allows one active session per process and ignores static settings (master, memory,
    jars) of a second ``getOrCreate``; the first call decides them. Runtime settings (shuffle
    partitions, time zone) are applied again on reuse.
    """
    from pyspark.sql import SparkSession

    native_jar = None
    if opts.native_parser:
        from backend.pipeline import native

        native_jar = native.build_jar(opts.var_dir / "native")
    conf = spark_conf(opts, native_jar)
    for sub in ("spark-tmp", "ivy", "derby"):
        (opts.var_dir / sub).mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.master(opts.master).appName(opts.app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j/JVM start failures come as several unrelated types
        raise SparkSetupError(
            f"Spark could not start with master {opts.master!r}: {exc}. Check that Java 17+ is "
            "installed (java -version) and JAVA_HOME points to it."
        ) from exc
    for key in (
        "spark.sql.shuffle.partitions",
        "spark.sql.session.timeZone",
        "spark.sql.streaming.numRecentProgressUpdates",
        "spark.sql.parquet.compression.codec",
        "spark.sql.parquet.outputTimestampType",
        "spark.sql.streaming.stateStore.providerClass",
        "spark.sql.streaming.noDataMicroBatches.enabled",
    ):
        spark.conf.set(key, conf[key])
    spark.sparkContext.setLogLevel(opts.log_level)
    return spark
