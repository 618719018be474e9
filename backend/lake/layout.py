"""The on-disk layout of the Parquet lake, and the lock that serializes changes to it.

::

    lake/
      events/dt=YYYY-MM-DD/batch-<query>-<batch>/part-*.parquet   valid events, by event date (UTC)
      events/dt=YYYY-MM-DD/compact-<uuid>/part-*.parquet          files rewritten by compaction
      quarantine/dt=YYYY-MM-DD/batch-<query>-<batch>/...          rejected records, by ingest date
      _batches/<query>/<batch>.json                               commit markers of the ingestion
      _staging/<query>/<batch>/                                   a batch being written
      _lock                                                       flock held while publishing

Readers take every ``*.parquet`` below ``events/`` or ``quarantine/`` and skip names starting
with ``_`` or ``.`` (pyarrow's and Spark's convention), so staging areas and markers are invisible.
Batch directories are named ``batch-...`` (no ``=``), so they add no partition column.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EVENTS = "events"
QUARANTINE = "quarantine"
TABLES = (EVENTS, QUARANTINE)
BATCHES = "_batches"
STAGING = "_staging"
LOCK = "_lock"
PARTITION_PREFIX = "dt="


def batch_dir_name(query_id: str, batch_id: int) -> str:
    """The directory one micro-batch writes into each date partition it touches."""
    return f"batch-{query_id}-{batch_id:010d}"


def parse_batch_dir_name(name: str) -> tuple[str, int] | None:
    """``(query_id, batch_id)`` of a batch directory name, or None for other names."""
    if not name.startswith("batch-"):
        return None
    query_id, _, batch = name[len("batch-") :].rpartition("-")
    if not query_id or not batch.isdigit():
        return None
    return query_id, int(batch)


def marker_path(lake_dir: Path, query_id: str, batch_id: int) -> Path:
    """The commit marker of a micro-batch; it exists once every file of the batch is published."""
    return lake_dir / BATCHES / query_id / f"{batch_id:010d}.json"


def staging_dir(lake_dir: Path, query_id: str, batch_id: int) -> Path:
    """Where a micro-batch is written before its partitions are moved into the lake."""
    return lake_dir / STAGING / query_id / str(batch_id)


def partitions(table_dir: Path) -> list[Path]:
    """The ``dt=...`` directories of a table, sorted by date."""
    if not table_dir.is_dir():
        return []
    return sorted(p for p in table_dir.iterdir() if p.is_dir() and p.name.startswith("dt="))


def is_committed(lake_dir: Path, batch_dir: Path) -> bool:
    """Whether ``batch_dir`` belongs to a micro-batch whose commit marker is written."""
    parsed = parse_batch_dir_name(batch_dir.name)
    return parsed is not None and marker_path(lake_dir, *parsed).is_file()


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to ``path`` through a temporary file and a rename, so it is never half there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(payload, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object written by ``write_json_atomic``."""
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


@contextmanager
def lake_lock(lake_dir: Path) -> Iterator[None]:
    """Hold the lake's exclusive lock (``flock`` on ``lake/_lock``) for the ``with`` block.

    Publishing a batch and swapping a compacted partition take it, so compaction never rewrites
    a partition while a batch is being moved into it. ``flock`` works between processes on one
    host; a lake on a shared file system needs one writer host.
    """
    lake_dir.mkdir(parents=True, exist_ok=True)
    with (lake_dir / LOCK).open("a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def remove_tree(path: Path) -> None:
    """Delete a directory tree if it exists."""
    if path.exists():
        shutil.rmtree(path)
