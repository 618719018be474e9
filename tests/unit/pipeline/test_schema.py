from __future__ import annotations

from backend.pipeline.schema import spark_schema
from backend.streaming.events import FIELD_NAMES


def test_spark_schema_lists_the_lake_columns() -> None:
    schema = spark_schema()
    assert schema.fieldNames() == [*FIELD_NAMES, "ingested_at", "source_ref"]
    assert schema["ts"].dataType.typeName() == "timestamp"
    assert not schema["user"].nullable and schema["rating"].nullable
