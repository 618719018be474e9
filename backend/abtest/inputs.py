"""Per-variant counts from event rows, from a per-user table, or from a CSV file of either.

Two shapes are read:

events
    One row per event, columns ``user``, ``variant``, ``type`` with ``type`` in
    {``impression``, ``click``} (case and surrounding spaces ignored). Extra columns are ignored.
per-user table
    One row per user, columns ``user``, ``variant``, ``impressions``, ``clicks`` (whole,
    non-negative numbers). Extra columns are ignored.

Both are reduced to one row per user and then counted in the unit of analysis (see
:mod:`backend.abtest.counts`): per user, ``impressions`` = users with at least one impression and
``clicks`` = users with at least one click; per impression, the totals. ``units`` = users in the
variant. The same rules hold for both shapes and raise :class:`AbTestInputError`: no rows, a
missing column, an empty value, a user in two variants, a user listed twice (per-user table), and
a user with more clicks than impressions (a click needs an impression; deduplicate or drop such
users). Results are sorted by variant name.

Error messages point at rows (1-based data rows, the header not counted) and counts, and never
quote the file's contents (its ids, values or column names) or where it is stored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from backend.abtest.counts import Unit, VariantCounts, check_unit
from backend.abtest.errors import AbTestInputError

EVENT_COLUMNS = ("user", "variant", "type")
USER_TABLE_COLUMNS = ("user", "variant", "impressions", "clicks")
EVENT_TYPES = ("impression", "click")


def _rows(positions: np.ndarray) -> str:
    """'row 3' or 'rows 3, 8 and 12 more': 1-based data rows, the first ones only."""
    shown = ", ".join(str(int(p) + 1) for p in positions[:3])
    more = len(positions) - 3
    return (
        ("row " if len(positions) == 1 else "rows ")
        + shown
        + (f" and {more} more" if more > 0 else "")
    )


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AbTestInputError(
            f"{what} is missing column(s) {', '.join(missing)}; it needs {', '.join(columns)} "
            f"(it has {len(frame.columns)} column(s))"
        )
    if frame.empty:
        raise AbTestInputError(f"{what} has no rows")
    for column in columns:
        empty = frame[column].isna().to_numpy()
        if empty.any():
            raise AbTestInputError(
                f"{what} has empty {column} values ({_rows(np.flatnonzero(empty))})"
            )


def _check_one_variant_per_user(per_user: pd.DataFrame, what: str) -> None:
    variants_per_user = per_user.groupby("user")["variant"].nunique()
    mixed = variants_per_user[variants_per_user > 1]
    if not mixed.empty:
        rows = np.flatnonzero(per_user["user"].isin(mixed.index).to_numpy())
        raise AbTestInputError(
            f"{what}: {len(mixed)} user(s) appear in more than one variant (first at "
            f"{_rows(rows[:1])}); each user must be assigned to exactly one variant"
        )


def _count_per_user(per_user: pd.DataFrame, unit: Unit, what: str) -> tuple[VariantCounts, ...]:
    # per_user: one row per user with integer columns impressions and clicks, and ``row``, the
    # 0-based position of the user's first row in the input.
    negative = per_user[(per_user["impressions"] < 0) | (per_user["clicks"] < 0)]
    if not negative.empty:
        raise AbTestInputError(
            f"{what}: negative counts for {len(negative)} user(s) "
            f"({_rows(negative['row'].to_numpy())}); impressions and clicks cannot be negative"
        )
    over = per_user[per_user["clicks"] > per_user["impressions"]]
    if not over.empty:
        raise AbTestInputError(
            f"{what}: {len(over)} user(s) have more clicks than impressions (the first user's "
            f"first {_rows(over['row'].to_numpy()[:1])}); deduplicate the clicks or drop those "
            "users"
        )
    if unit == "user":
        trials = (per_user["impressions"] > 0).astype(np.int64)
        successes = (per_user["clicks"] > 0).astype(np.int64)
    else:
        trials, successes = per_user["impressions"], per_user["clicks"]
    grouped = (
        pd.DataFrame(
            {"variant": per_user["variant"], "units": 1, "trials": trials, "successes": successes}
        )
        .groupby("variant", sort=True)
        .sum()
    )
    return tuple(
        VariantCounts(
            variant=str(variant),
            units=int(row["units"]),
            impressions=int(row["trials"]),
            clicks=int(row["successes"]),
        )
        for variant, row in grouped.iterrows()
    )


def counts_from_events(
    events: pd.DataFrame, *, unit: Unit = "user", source: str = "events"
) -> tuple[VariantCounts, ...]:
    """Counts per variant from event rows (``user``, ``variant``, ``type``); see the module doc."""
    unit = check_unit(unit)
    _require_columns(events, EVENT_COLUMNS, source)
    types = events["type"].astype(str).str.strip().str.lower()
    unknown = ~types.isin(EVENT_TYPES).to_numpy()
    if unknown.any():
        raise AbTestInputError(
            f"{source} has {types[unknown].nunique()} unknown event type(s) "
            f"({_rows(np.flatnonzero(unknown))}); type must be {' or '.join(EVENT_TYPES)}"
        )
    frame = pd.DataFrame(
        {
            "user": events["user"].astype(str).to_numpy(),
            "variant": events["variant"].astype(str).to_numpy(),
            "impressions": (types == "impression").astype(np.int64).to_numpy(),
            "clicks": (types == "click").astype(np.int64).to_numpy(),
            "row": np.arange(len(events)),
        }
    )
    _check_one_variant_per_user(frame[["user", "variant"]].drop_duplicates(), source)
    per_user = frame.groupby(["user", "variant"], sort=False, as_index=False).agg(
        impressions=("impressions", "sum"), clicks=("clicks", "sum"), row=("row", "min")
    )
    return _count_per_user(per_user, unit, source)


def _whole_numbers(table: pd.DataFrame, column: str, what: str) -> np.ndarray:
    numbers = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
    bad = np.isnan(numbers) | (numbers != np.floor(np.nan_to_num(numbers)))
    if bad.any():
        raise AbTestInputError(
            f"{what}: {column} must be whole numbers (not at {_rows(np.flatnonzero(bad))})"
        )
    return numbers.astype(np.int64)


def counts_from_user_table(
    table: pd.DataFrame, *, unit: Unit = "user", source: str = "user table"
) -> tuple[VariantCounts, ...]:
    """Counts per variant from one row per user (``user``, ``variant``, ``impressions``,
    ``clicks``); see the module doc."""
    unit = check_unit(unit)
    _require_columns(table, USER_TABLE_COLUMNS, source)
    per_user = pd.DataFrame(
        {
            "user": table["user"].astype(str).to_numpy(),
            "variant": table["variant"].astype(str).to_numpy(),
            "impressions": _whole_numbers(table, "impressions", source),
            "clicks": _whole_numbers(table, "clicks", source),
            "row": np.arange(len(table)),
        }
    )
    _check_one_variant_per_user(per_user, source)
    repeated = per_user["user"].duplicated().to_numpy()
    if repeated.any():
        raise AbTestInputError(
            f"{source}: {per_user['user'][repeated].nunique()} user(s) have more than one row "
            f"(again at {_rows(np.flatnonzero(repeated))}); a per-user table has exactly one row "
            "per user (sum their impressions and clicks)"
        )
    return _count_per_user(per_user, unit, source)


def _read_csv(path: Path, **options: Any) -> pd.DataFrame:
    """The CSV as text columns; errors name the problem, never the file's bytes or location."""
    try:
        return pd.read_csv(path, skipinitialspace=True, **options)
    except pd.errors.EmptyDataError as exc:
        raise AbTestInputError("the CSV file is empty") from exc
    except UnicodeDecodeError as exc:
        raise AbTestInputError("the CSV file is not UTF-8 text") from exc
    except pd.errors.ParserError as exc:
        # Only where it failed: the parser's own message may quote the offending text.
        line = re.search(r"line (\d+)", str(exc))
        where = f" (at line {line.group(1)})" if line else ""
        raise AbTestInputError(f"the CSV file cannot be parsed as CSV{where}") from exc


def csv_variants(path: str | Path) -> set[str] | None:
    """The distinct values of a CSV file's ``variant`` column, or None when it cannot tell
    (no such column, or a file that does not parse; :func:`counts_from_csv` reports those)."""
    try:
        header = _read_csv(Path(path), nrows=0)
        names = [c for c in header.columns if str(c).strip() == "variant"]
        if len(names) != 1:
            return None
        column = _read_csv(Path(path), usecols=names, dtype=str)[names[0]]
    except (AbTestInputError, OSError, ValueError):
        return None
    return {str(v) for v in column.dropna().unique()}


CsvShape = Literal["events", "table"]


def read_experiment_csv(path: str | Path) -> tuple[pd.DataFrame, CsvShape]:
    """A CSV file of an experiment and its shape, told apart by the header: ``type`` means one
    row per event, ``impressions`` and ``clicks`` one row per user."""
    path = Path(path)
    if not path.is_file():
        raise AbTestInputError("the CSV file does not exist")
    frame = _read_csv(path, dtype={"user": str, "variant": str})
    frame.columns = [str(c).strip() for c in frame.columns]
    columns = set(frame.columns)
    is_events = set(EVENT_COLUMNS) <= columns
    is_table = set(USER_TABLE_COLUMNS) <= columns
    if is_events and is_table:
        raise AbTestInputError(
            "the CSV file has both a type column and impressions/clicks columns; keep either "
            f"{', '.join(EVENT_COLUMNS)} (events) or {', '.join(USER_TABLE_COLUMNS)} (per user)"
        )
    if is_events or is_table:
        return frame, "events" if is_events else "table"
    missing_events = [c for c in EVENT_COLUMNS if c not in columns]
    missing_table = [c for c in USER_TABLE_COLUMNS if c not in columns]
    raise AbTestInputError(
        f"the CSV file has {len(frame.columns)} column(s) but not the ones needed: either "
        f"{', '.join(EVENT_COLUMNS)} (one row per event; missing {', '.join(missing_events)}) "
        f"or {', '.join(USER_TABLE_COLUMNS)} (one row per user, optionally with views, "
        f"purchases, value and pre_* columns; missing {', '.join(missing_table)})"
    )


def counts_from_csv(path: str | Path, *, unit: Unit = "user") -> tuple[VariantCounts, ...]:
    """Counts per variant from a CSV file of events or of one row per user."""
    unit = check_unit(unit)
    frame, shape = read_experiment_csv(path)
    if shape == "events":
        return counts_from_events(frame, unit=unit, source="the CSV file")
    return counts_from_user_table(frame, unit=unit, source="the CSV file")
