"""Compaction: rewrite each date partition's many small batch files into a few large ones.

Every micro-batch adds one directory (one file per date with ``repartition_by_date``) to each
partition it touches, so a following ingestion leaves thousands of small files, which slow down
every reader. ``compact`` rewrites them per partition, with pyarrow, into files of about
``target_file_mb``.

Why this is safe with the ingestion's exactly-once scheme (``backend.pipeline.ingest.writer``):
the lake is written by ``foreachBatch`` with its own commit markers, not by Spark's file sink, so
there is no ``_spark_metadata`` log whose file list compaction would invalidate. Only directories of
*committed* batches (marker present) and earlier compaction output are rewritten; a directory
left by a batch that crashed before its marker is carried over unchanged, because the replay of
that batch recognises it by name. The swap happens under the lake lock, so no batch is published
into a partition while it is being replaced, and it is one atomic ``renameat2(RENAME_EXCHANGE)``
of the old and the new partition directory on Linux (two renames elsewhere, leaving the
partition absent for an instant).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from backend.lake import layout


@dataclass(frozen=True)
class _Rewritten:
    """One rewritten partition: file counts before and after."""

    files_before: int
    files_after: int


@dataclass(frozen=True)
class CompactResult:
    """Parquet files over all partitions before and after, and how many partitions were
    rewritten (the others were compact already)."""

    files_before: int
    files_after: int
    partitions_rewritten: int


def compact(lake_dir: Path, target_file_mb: float = 128.0) -> CompactResult:
    """Rewrite each partition of the lake (events and quarantine) into files of about
    ``target_file_mb`` MiB. Returns file counts over all partitions before and after; a
    partition already in one file per target size is left alone.
    """
    if target_file_mb <= 0:
        raise ValueError(f"target_file_mb must be positive, got {target_file_mb}")
    target_bytes = int(target_file_mb * 1024 * 1024)
    before = after = rewritten = 0
    for table in layout.TABLES:
        for part in layout.partitions(Path(lake_dir) / table):
            with layout.lake_lock(Path(lake_dir)):
                done = _compact_partition(Path(lake_dir), part, target_bytes)
            if done is None:
                count = sum(1 for _ in part.glob("*/*.parquet"))
                before += count
                after += count
            else:
                before += done.files_before
                after += done.files_after
                rewritten += 1
    return CompactResult(before, after, rewritten)


def _compact_partition(lake_dir: Path, part: Path, target_bytes: int) -> _Rewritten | None:
    dirs = [d for d in part.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))]
    keep = [d for d in dirs if d.name.startswith("batch-") and not layout.is_committed(lake_dir, d)]
    merge = [d for d in dirs if d not in keep]
    files = sorted(f for d in merge for f in d.glob("*.parquet"))
    total_bytes = sum(f.stat().st_size for f in files)
    needed = max(1, -(-total_bytes // target_bytes))
    if len(files) <= needed:
        return None
    paths = [str(f) for f in files]
    # A partition may mix files written before a contract field existed with newer ones; pyarrow
    # would take the schema of the first file and drop the newer columns, so read with the union.
    found = ds.dataset(paths, format="parquet")
    schema = pa.unify_schemas([f.physical_schema for f in found.get_fragments()])
    table_data = ds.dataset(paths, schema=schema, format="parquet").to_table()
    rows = table_data.num_rows
    rows_per_file = max(1, int(rows * target_bytes / max(total_bytes, 1)))
    token = uuid.uuid4().hex[:12]
    swap = part.parent / f"_swap-{part.name}-{token}"
    out_dir = swap / f"compact-{token}"
    out_dir.mkdir(parents=True)
    written = 0
    for start in range(0, max(rows, 1), rows_per_file):
        chunk = table_data.slice(start, rows_per_file)
        pq.write_table(chunk, out_dir / f"part-{written:05d}.parquet", compression="zstd")
        written += 1
    kept_files = sum(1 for d in keep for _ in d.glob("*.parquet"))
    for d in keep:
        os.rename(d, swap / d.name)
    _exchange(swap, part)
    layout.remove_tree(swap)
    return _Rewritten(files_before=len(files) + kept_files, files_after=written + kept_files)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(new: Path, current: Path) -> None:
    """Swap two directories: ``current`` gets ``new``'s content and ``new`` the old content."""
    libc_name = ctypes.util.find_library("c")
    renameat2 = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        result = renameat2(
            _AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(current), _RENAME_EXCHANGE
        )
        if result == 0:
            return
    # No atomic exchange on this platform or file system: two renames.
    parked = new.with_name(new.name + "-old")
    os.rename(current, parked)
    os.rename(new, current)
    os.rename(parked, new)
