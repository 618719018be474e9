"""Reading the Parquet lake into pandas for the training, validation and A/B jobs.

Reads use ``pyarrow.dataset`` rather than Spark: a lake of a few million events fits in memory,
pyarrow reads it in a second or two with column projection and predicate push-down, and the jobs
that call these readers then need no JVM. For a lake that outgrows memory, read it with Spark
(``spark.read.parquet(<lake>/events)``; the layout is in ``backend.lake.layout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
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
    partitioning = ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive")
    found = ds.dataset(root, format="parquet", partitioning=partitioning)
    # Files written before a contract field existed lack its column. pyarrow takes a dataset's
    # schema from its first file, which would hide newer columns (or fail to find one named in
    # ``columns``); the union of every file's schema reads old files' missing columns as nulls.
    schema = pa.unify_schemas(
        [f.physical_schema for f in found.get_fragments()] + [partitioning.schema]
    )
    return ds.dataset(
        root,
        schema=schema,
        format="parquet",
        partitioning=partitioning,
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


#: Event types counted per user for experiment metrics, and the column each one counts into.
USER_COUNT_TYPES = {
    "impression": "impressions",
    "click": "clicks",
    "view": "views",
    "purchase": "purchases",
}


@dataclass(frozen=True)
class ExperimentUsers:
    """Per-user aggregates of one experiment (see :func:`read_experiment_users`): ``users`` has
    one row per (user, variant); ``start`` is where the experiment period began and
    ``pre_start`` where the pre-period began (None without one)."""

    users: pd.DataFrame
    start: datetime
    pre_start: datetime | None


def _utc(value: datetime) -> pa.Scalar:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return pa.scalar(stamp.to_pydatetime(), type=pa.timestamp("us", tz="UTC"))


def _count_per_user(frame: pd.DataFrame, keys: list[str], prefix: str = "") -> pd.DataFrame:
    counts = pd.crosstab([frame[k] for k in keys], frame["type"])
    counts = counts.reindex(columns=list(USER_COUNT_TYPES), fill_value=0)
    counts.columns = [prefix + USER_COUNT_TYPES[c] for c in counts.columns]
    return counts.astype("int64").reset_index()


def read_experiment_users(
    lake_dir: Path,
    experiment: str,
    *,
    start: datetime | None = None,
    pre_period: timedelta | None = None,
) -> ExperimentUsers:
    """One row per (user, variant) of an experiment: ``impressions``, ``clicks``, ``views`` and
    ``purchases`` counted from its events at or after ``start`` (default: its first event).

    With ``pre_period``, also ``pre_impressions``, ``pre_clicks``, ``pre_views`` and
    ``pre_purchases``: the same users' events of those types in ``[start - pre_period, start)``
    whatever experiment they belong to (before the start a user is in none), 0 for a user with
    none: the covariates of CUPED. Rows are sorted by user. Raises ``LakeEmptyError`` when the
    experiment has no such event in the lake (naming the experiments that do).
    """
    condition = (pc.field("experiment") == experiment) & pc.field("type").isin(
        list(USER_COUNT_TYPES)
    )
    if start is not None:
        condition = condition & (pc.field("ts") >= _utc(start))
    events = read_events(lake_dir, columns=["user", "variant", "type", "ts"], filter=condition)
    if events.empty:
        known = list_experiments(lake_dir)
        raise LakeEmptyError(
            f"experiment {experiment!r} has no impressions, clicks, views or purchases in the "
            f"lake {lake_dir}{' from the start given' if start is not None else ''}; known "
            f"experiments: {', '.join(known) if known else 'none'}"
        )
    if start is not None:
        begin: datetime = _utc(start).as_py()
    else:
        begin = pd.to_datetime(events["ts"], utc=True).min().to_pydatetime()
    users = _count_per_user(events, ["user", "variant"])
    pre_start = None
    if pre_period is not None:
        pre_start = begin - pre_period
        pre = read_events(
            lake_dir,
            columns=["user", "type"],
            filter=pc.field("type").isin(list(USER_COUNT_TYPES))
            & (pc.field("ts") >= _utc(pre_start))
            & (pc.field("ts") < _utc(begin))
            & pc.field("user").isin(users["user"].unique().tolist()),
        )
        pre_counts = _count_per_user(pre, ["user"], "pre_")
        users = users.merge(pre_counts, on="user", how="left")
        pre_columns = ["pre_" + c for c in USER_COUNT_TYPES.values()]
        users[pre_columns] = users[pre_columns].fillna(0).astype("int64")
    users = users.sort_values(["user", "variant"], kind="stable").reset_index(drop=True)
    users.columns.name = None
    return ExperimentUsers(users, begin, pre_start)


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
