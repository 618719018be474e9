"""The Spark schema of the lake's events table, derived from the event contract's ``FIELDS``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.streaming.events import FIELDS

if TYPE_CHECKING:
    from pyspark.sql.types import StructType


def spark_schema() -> StructType:
    """The Spark ``StructType`` of a valid event as stored in the lake.

    ``ts`` becomes a UTC ``timestamp``; the lake adds ``ingested_at`` (timestamp) and
    ``source_ref`` (Kafka ``topic/partition/offset`` or the landing file), and is partitioned by
    ``dt`` (the event date, ``YYYY-MM-DD``, UTC), which lives in the directory names only.
    """
    from pyspark.sql.types import (
        DoubleType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    kinds = {"string": StringType(), "integer": LongType(), "number": DoubleType()}
    fields = []
    for spec in FIELDS:
        if spec.name == "ts":
            fields.append(StructField("ts", TimestampType(), False))
        elif spec.name == "sent_at":
            fields.append(StructField("sent_at", TimestampType(), True))
        elif spec.name == "schema_version":
            fields.append(StructField("schema_version", IntegerType(), False))
        else:
            fields.append(StructField(spec.name, kinds[spec.kind], not spec.required))
    fields.append(StructField("ingested_at", TimestampType(), False))
    fields.append(StructField("source_ref", StringType(), True))
    return StructType(fields)
