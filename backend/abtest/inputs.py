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
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from backend.abtest.counts import Unit, VariantCounts, check_unit
from backend.abtest.errors import AbTestInputError

EVENT_COLUMNS = ("user", "variant", "type")
USER_TABLE_COLUMNS = ("user", "variant", "impressions", "clicks")
EVENT_TYPES = ("impression", "click")
_EXAMPLES = 3


def _examples(values: Iterable[object]) -> str:
    items = [str(v) for v in values]
    shown = ", ".join(items[:_EXAMPLES])
    return shown + (f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else "")


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AbTestInputError(
            f"{what} is missing column(s) {', '.join(missing)}; it needs {', '.join(columns)} "
            f"(found: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    if frame.empty:
        raise AbTestInputError(f"{what} has no rows")
    for column in columns:
        empty = frame[column].isna()
        if empty.any():
            rows = _examples(frame.index[empty])
            raise AbTestInputError(f"{what} has empty {column} values (rows {rows})")


def _check_one_variant_per_user(per_user: pd.DataFrame, what: str) -> None:
    variants_per_user = per_user.groupby("user")["variant"].nunique()
    mixed = variants_per_user[variants_per_user > 1]
    if not mixed.empty:
        raise AbTestInputError(
            f"{what}: {len(mixed)} user(s) appear in more than one variant "
            f"({_examples(mixed.index)}); each user must be assigned to exactly one variant"
        )


def _count_per_user(per_user: pd.DataFrame, unit: Unit, what: str) -> tuple[VariantCounts, ...]:
    # per_user: one row per user with integer columns impressions and clicks.
    negative = per_user[(per_user["impressions"] < 0) | (per_user["clicks"] < 0)]
    if not negative.empty:
        raise AbTestInputError(
            f"{what}: negative counts for user(s) {_examples(negative['user'])}; "
            "impressions and clicks cannot be negative"
        )
    over = per_user[per_user["clicks"] > per_user["impressions"]]
    if not over.empty:
        first = over.iloc[0]
        raise AbTestInputError(
            f"{what}: {len(over)} user(s) have more clicks than impressions, e.g. user "
            f"{first['user']} in variant {first['variant']} has {int(first['clicks'])} clicks "
            f"but only {int(first['impressions'])} impressions; deduplicate the clicks or drop "
            "those users"
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
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise AbTestInputError(
            f"{source} has unknown event type(s) {_examples(unknown)}; type must be "
            f"{' or '.join(EVENT_TYPES)}"
        )
    frame = pd.DataFrame(
        {
            "user": events["user"].astype(str),
            "variant": events["variant"].astype(str),
            "impressions": (types == "impression").astype(np.int64),
            "clicks": (types == "click").astype(np.int64),
        }
    )
    _check_one_variant_per_user(frame[["user", "variant"]].drop_duplicates(), source)
    per_user = frame.groupby(["user", "variant"], sort=False, as_index=False).sum()
    return _count_per_user(per_user, unit, source)


def _whole_numbers(table: pd.DataFrame, column: str, what: str) -> pd.Series:
    numbers = pd.to_numeric(table[column], errors="coerce")
    bad = numbers.isna() | (numbers != np.floor(numbers.fillna(0)))
    if bad.any():
        first = table.index[bad][0]
        raise AbTestInputError(
            f"{what}: {column} must be whole numbers; row {first} has {table[column][first]!r}"
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
            "user": table["user"].astype(str),
            "variant": table["variant"].astype(str),
            "impressions": _whole_numbers(table, "impressions", source),
            "clicks": _whole_numbers(table, "clicks", source),
        }
    )
    _check_one_variant_per_user(per_user, source)
    repeated = per_user["user"][per_user["user"].duplicated()].unique()
    if len(repeated):
        raise AbTestInputError(
            f"{source}: user(s) {_examples(repeated)} have more than one row; a per-user table "
            "has exactly one row per user (sum their impressions and clicks)"
        )
    return _count_per_user(per_user, unit, source)


def counts_from_csv(path: str | Path, *, unit: Unit = "user") -> tuple[VariantCounts, ...]:
    """Counts per variant from a CSV file of events or of one row per user, told apart by the
    header: ``type`` means events, ``impressions`` and ``clicks`` mean a per-user table."""
    unit = check_unit(unit)
    path = Path(path)
    if not path.is_file():
        raise AbTestInputError(f"CSV file {path} does not exist")
    try:
        frame = pd.read_csv(path, dtype={"user": str, "variant": str}, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise AbTestInputError(f"CSV file {path} is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise AbTestInputError(f"CSV file {path} cannot be parsed: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    columns = set(frame.columns)
    is_events = set(EVENT_COLUMNS) <= columns
    is_table = set(USER_TABLE_COLUMNS) <= columns
    source = f"CSV file {path}"
    if is_events and is_table:
        raise AbTestInputError(
            f"{source} has both a type column and impressions/clicks columns; keep either "
            f"{', '.join(EVENT_COLUMNS)} (events) or {', '.join(USER_TABLE_COLUMNS)} (per user)"
        )
    if is_events:
        return counts_from_events(frame, unit=unit, source=source)
    if is_table:
        return counts_from_user_table(frame, unit=unit, source=source)
    missing_events = [c for c in EVENT_COLUMNS if c not in columns]
    missing_table = [c for c in USER_TABLE_COLUMNS if c not in columns]
    raise AbTestInputError(
        f"{source} has columns {', '.join(frame.columns) or 'none'}; expected either "
        f"{', '.join(EVENT_COLUMNS)} (one row per event; missing {', '.join(missing_events)}) "
        f"or {', '.join(USER_TABLE_COLUMNS)} (one row per user; missing "
        f"{', '.join(missing_table)})"
    )
