"""Writes a lake in the ingestion's layout with pyarrow, for tests that need no Spark."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from backend.lake import layout

EVENT_SCHEMA = pa.schema(
    [
        ("schema_version", pa.int32()),
        ("event_id", pa.string()),
        ("user", pa.string()),
        ("item", pa.string()),
        ("type", pa.string()),
        ("rating", pa.float64()),
        ("experiment", pa.string()),
        ("variant", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("source", pa.string()),
        ("sent_at", pa.timestamp("us", tz="UTC")),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("source_ref", pa.string()),
    ]
)

#: The events table since the contract gained ``recommendation_id`` and ``model_version``.
WITH_MODEL_SCHEMA = EVENT_SCHEMA.insert(8, pa.field("recommendation_id", pa.string())).insert(
    9, pa.field("model_version", pa.string())
)


def event(
    event_id: str, user: str, item: str, type_: str, ts_s: int, **extra: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in WITH_MODEL_SCHEMA.names}
    row.update(
        schema_version=1,
        event_id=event_id,
        user=user,
        item=item,
        type=type_,
        ts=datetime.fromtimestamp(ts_s, tz=UTC),
        ingested_at=datetime.now(tz=UTC),
        source_ref="test",
    )
    row.update(extra)
    return row


def write_batch(
    lake: Path,
    batch_id: int,
    rows: list[dict[str, Any]],
    *,
    query: str = "q",
    committed: bool = True,
    schema: pa.Schema = EVENT_SCHEMA,
) -> None:
    """One micro-batch: a directory per event date, plus its marker when ``committed``."""
    by_date: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_date.setdefault(row["ts"].strftime("%Y-%m-%d"), []).append(row)
    for dt, part in by_date.items():
        target = lake / layout.EVENTS / f"dt={dt}" / layout.batch_dir_name(query, batch_id)
        target.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(part, schema=schema), target / "part-0.parquet")
    if committed:
        layout.write_json_atomic(
            layout.marker_path(lake, query, batch_id),
            {"batch_id": batch_id, "valid": len(rows), "quarantined": {}},
        )
