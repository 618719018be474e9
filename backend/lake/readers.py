"""Reading the Parquet lake into pandas for the training, validation and A/B jobs.

Reads use ``pyarrow.dataset`` rather than Spark: a lake of a few million events fits in memory,
pyarrow reads it in a second or two with column projection and predicate push-down, and the jobs
that call these readers then need no JVM. For a lake that outgrows memory, read it with Spark
(``spark.read.parquet(<lake>/events)``; the layout is in ``backend.lake.layout``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from backend.lake import layout


class LakeEmptyError(ValueError):
    """The lake (or the part asked for) holds no data yet."""


def _dataset(lake_dir: Path, table: str) -> ds.Dataset:
    root = Path(lake_dir) / table
    if not any(root.glob("dt=*/*/*.parquet")):
        raise LakeEmptyError(
            f"the lake {lake_dir} has no {table} yet (no Parquet files under {root}); "
            "ingest events first (recflow ingest)"
        )
    return ds.dataset(
        root,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive"),
        exclude_invalid_files=False,
    )


def read_events(
    lake_dir: Path, *, columns: list[str] | None = None, filter: pc.Expression | None = None
) -> pd.DataFrame:
    """Valid events of the lake as a DataFrame (optionally only ``columns`` / rows matching
    ``filter``, a ``pyarrow.compute`` expression). Raises ``LakeEmptyError`` when there are none.
    """
    table = _dataset(lake_dir, layout.EVENTS).to_table(columns=columns, filter=filter)
    return table.to_pandas()


def read_ratings(lake_dir: Path) -> pd.DataFrame:
    """Explicit ratings: the latest rating event per (user, item).

    Columns ``user`` (str), ``item`` (str), ``rating`` (float64) and ``timestamp`` (int64 epoch
    seconds of the event time); "latest" is by event time, ties broken by ``event_id``. Sorted by
    (timestamp, user, item). Raises ``LakeEmptyError`` when the lake holds no rating event.
    """
    frame = read_events(
        lake_dir,
        columns=["event_id", "user", "item", "rating", "ts"],
        filter=(pc.field("type") == "rating") & pc.field("rating").is_valid(),
    )
    if frame.empty:
        raise LakeEmptyError(f"the lake {lake_dir} holds no rating events")
    frame = frame.sort_values(["ts", "event_id"], kind="stable")
    frame = frame.drop_duplicates(["user", "item"], keep="last")
    out = pd.DataFrame(
        {
            "user": frame["user"].astype(str),
            "item": frame["item"].astype(str),
            "rating": frame["rating"].astype("float64"),
            "timestamp": _epoch_seconds(frame["ts"]),
        }
    )
    return out.sort_values(["timestamp", "user", "item"], kind="stable").reset_index(drop=True)


def read_experiment_events(lake_dir: Path, experiment: str) -> pd.DataFrame:
    """Impressions and clicks of one experiment: columns ``user``, ``variant``, ``type``, ``ts``.

    ``ts`` is a UTC ``datetime64``; rows are sorted by ``ts``. Raises ``LakeEmptyError`` when the
    experiment has no impression or click in the lake (with the experiments that do exist).
    """
    frame = read_events(
        lake_dir,
        columns=["user", "variant", "type", "ts"],
        filter=(pc.field("experiment") == experiment)
        & pc.field("type").isin(["impression", "click"]),
    )
    if frame.empty:
        known = list_experiments(lake_dir)
        raise LakeEmptyError(
            f"experiment {experiment!r} has no impressions or clicks in the lake {lake_dir}; "
            f"known experiments: {', '.join(known) if known else 'none'}"
        )
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def list_experiments(lake_dir: Path) -> list[str]:
    """The experiments that appear in the lake's events, sorted (empty for an empty lake)."""
    try:
        table = _dataset(lake_dir, layout.EVENTS).to_table(
            columns=["experiment"], filter=pc.field("experiment").is_valid()
        )
    except LakeEmptyError:
        return []
    values = pc.unique(table.column("experiment")).to_pylist()
    return sorted(str(v) for v in values if v is not None)


def read_quarantine(lake_dir: Path) -> pd.DataFrame:
    """Rejected records: ``raw``, ``raw_bytes``, ``reason``, ``field``, ``source_ref``,
    ``ingested_at`` and ``dt`` (the ingest date), sorted by ``ingested_at``. Raises
    ``LakeEmptyError`` when nothing was quarantined.
    """
    frame = _dataset(lake_dir, layout.QUARANTINE).to_table().to_pandas()
    return frame.sort_values("ingested_at", kind="stable").reset_index(drop=True)


def _epoch_seconds(values: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(values, utc=True)
    return ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("int64")
