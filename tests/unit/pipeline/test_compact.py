from __future__ import annotations

from pathlib import Path

from backend.jsonable import to_jsonable
from backend.lake import layout
from backend.lake import readers as lake
from backend.pipeline.compact import compact
from tests.unit.pipeline.lake_builder import WITH_MODEL_SCHEMA, event, write_batch

T0 = 1_699_920_000  # 2023-11-14T00:00:00Z


def files(root: Path) -> list[Path]:
    return sorted(root.glob("events/dt=*/*/*.parquet"))


def test_compaction_merges_committed_batches_and_keeps_the_rows(tmp_path: Path) -> None:
    for b in range(6):
        write_batch(
            tmp_path,
            b,
            [event(f"e{b}-{i}", "u", f"i{i}", "click", T0 + b * 3600 * 12) for i in range(5)],
        )
    before = lake.read_events(tmp_path).sort_values("event_id").reset_index(drop=True)
    n_files = len(files(tmp_path))
    result = compact(tmp_path, target_file_mb=64)
    assert result.files_before == n_files == 6
    assert result.files_after == 3  # one per date partition
    assert len(files(tmp_path)) == 3
    after = lake.read_events(tmp_path).sort_values("event_id").reset_index(drop=True)
    assert after.equals(before)
    assert not list((tmp_path / "events").glob("_*"))  # no swap directory left


def test_uncommitted_batch_directories_are_left_alone(tmp_path: Path) -> None:
    write_batch(tmp_path, 0, [event("a", "u", "i", "click", T0)])
    write_batch(tmp_path, 1, [event("b", "u", "i", "click", T0)])
    write_batch(tmp_path, 2, [event("c", "u", "i", "click", T0)], committed=False)
    compact(tmp_path, target_file_mb=64)
    names = sorted(p.name for p in (tmp_path / "events").glob("dt=*/*"))
    assert names[0] == layout.batch_dir_name("q", 2)
    assert names[1].startswith("compact-") and len(names) == 2
    assert sorted(lake.read_events(tmp_path)["event_id"]) == ["a", "b", "c"]


def test_compaction_is_a_no_op_when_already_compact(tmp_path: Path) -> None:
    write_batch(tmp_path, 0, [event("a", "u", "i", "click", T0)])
    result = compact(tmp_path, target_file_mb=64)
    assert (result.files_before, result.files_after, result.partitions_rewritten) == (1, 1, 0)


def test_the_result_is_three_counts_in_json(tmp_path: Path) -> None:
    for b in range(3):
        write_batch(tmp_path, b, [event(f"e{b}", "u", "i", "click", T0)])
    assert to_jsonable(compact(tmp_path, target_file_mb=64)) == {
        "files_before": 3,
        "files_after": 1,
        "partitions_rewritten": 1,
    }


def test_compaction_keeps_columns_that_older_files_lack(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    write_batch(tmp_path, 0, [event(f"old-{i}", "u", "i", "click", T0) for i in range(3)])
    newer = [event(f"new-{i}", "u", "i", "click", T0, model_version="als-v2") for i in range(3)]
    write_batch(tmp_path, 1, newer, schema=WITH_MODEL_SCHEMA)
    result = compact(tmp_path, target_file_mb=64)
    assert (result.files_before, result.files_after) == (2, 1)
    (merged,) = files(tmp_path)
    table = pq.ParquetFile(merged).read()
    versions = dict(
        zip(table["event_id"].to_pylist(), table["model_version"].to_pylist(), strict=True)
    )
    assert versions == {
        **{f"old-{i}": None for i in range(3)},
        **{f"new-{i}": "als-v2" for i in range(3)},
    }
