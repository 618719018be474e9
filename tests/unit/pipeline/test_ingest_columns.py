"""The ingestion keeps ``recommendation_id`` and ``model_version`` in the lake, and a lake that
mixes files written before those columns existed with newer ones still reads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.lake import layout
from backend.lake import readers as lake
from backend.pipeline.ingest import IngestOptions, run_ingest
from backend.pipeline.sources import DirSource
from backend.streaming.events import Event, encode_event, now_ms
from tests.unit.streaming.event_cases import RULES

pytestmark = pytest.mark.spark

NEW_COLUMNS = ("recommendation_id", "model_version")


def ingest(spark: Any, root: Path, events: list[Event]) -> Path:
    landing = root / "landing"
    landing.mkdir(parents=True)
    tmp = landing / ".f1.tmp"
    tmp.write_bytes(b"".join(encode_event(e) + b"\n" for e in events))
    os.replace(tmp, landing / "f1.jsonl")
    opts = IngestOptions(
        source=DirSource(landing, max_files_per_trigger=1),
        lake_dir=root / "lake",
        checkpoint_root=root / "checkpoints",
        rules=RULES,
    )
    result = run_ingest(spark, opts)
    assert (result.valid, result.quarantined) == (len(events), {})
    return opts.lake_dir


def test_ingested_events_keep_the_recommendation_and_model_columns(
    spark: Any, tmp_path: Path
) -> None:
    now = now_ms()
    events = [
        Event(
            event_id="imp-1",
            user="u1",
            item="i1",
            type="impression",
            ts=now,
            experiment="home",
            variant="A",
            recommendation_id="rec-1",
            model_version="als-v2.1",
        ),
        Event(
            event_id="clk-1", user="u1", item="i1", type="click", ts=now, recommendation_id="rec-1"
        ),
        Event(event_id="old-1", user="u2", item="i2", type="view", ts=now),
    ]
    lake_dir = ingest(spark, tmp_path, events)
    files = sorted((lake_dir / layout.EVENTS).rglob("*.parquet"))
    assert files
    for path in files:
        schema = pq.read_schema(path)
        for name in NEW_COLUMNS:
            assert schema.field(name).type == pa.string() and schema.field(name).nullable
    rows = lake.read_events(lake_dir, columns=["event_id", *NEW_COLUMNS])
    got = {r.event_id: (r.recommendation_id, r.model_version) for r in rows.itertuples()}
    assert got == {
        "imp-1": ("rec-1", "als-v2.1"),
        "clk-1": ("rec-1", None),
        "old-1": (None, None),
    }


def test_a_lake_mixing_files_from_before_the_new_columns_still_reads(
    spark: Any, tmp_path: Path
) -> None:
    now = now_ms()
    events = [
        Event(
            event_id=f"n-{i}",
            user=f"u{i}",
            item="i1",
            type="click" if i % 2 else "impression",
            ts=now,
            experiment="home",
            variant="A",
            model_version="als-v2",
        )
        for i in range(4)
    ]
    lake_dir = ingest(spark, tmp_path, events)
    new_file = sorted((lake_dir / layout.EVENTS).rglob("*.parquet"))[0]
    # A file as the ingestion wrote it before the contract had the two fields, in an earlier
    # date partition (so a reader meets it first).
    old = pq.ParquetFile(new_file).read().drop_columns(list(NEW_COLUMNS))
    ids = pa.array([f"o-{i}" for i in range(old.num_rows)])
    old = old.set_column(old.schema.get_field_index("event_id"), "event_id", ids)
    old_dir = lake_dir / layout.EVENTS / "dt=2020-01-01" / layout.batch_dir_name("old", 0)
    old_dir.mkdir(parents=True)
    pq.write_table(old, old_dir / "part-00000.parquet")
    frame = lake.read_events(lake_dir, columns=["event_id", "user", "type", "experiment"])
    olds = [f"o-{i}" for i in range(old.num_rows)]
    assert sorted(frame["event_id"]) == ["n-0", "n-1", "n-2", "n-3", *olds]
    home = lake.read_experiment_events(lake_dir, "home")
    assert len(home) == 4 + old.num_rows and set(home["type"]) == {"impression", "click"}
