"""One row per user: the input of the per-user metrics (ratio CTR, Welch, CUPED, guardrails).

The table has the columns ``user``, ``variant``, ``impressions`` and ``clicks`` (whole,
non-negative numbers), optionally ``views`` and ``purchases`` (whole, non-negative), ``value``
(any finite number, e.g. revenue; refunds may make it negative), and pre-period covariates for
CUPED: the same metrics before the experiment started, named ``pre_<column>`` (e.g.
``pre_clicks``, ``pre_impressions``, ``pre_value``). Columns it does not know are ignored.

It is read from a per-user table (:func:`users_from_table`), from event rows
(:func:`users_from_events`: ``user``, ``variant``, ``type`` with ``type`` one of impression,
click, view, purchase, rating; ratings count towards nothing here), or from a CSV file of either
(:func:`users_from_csv`). The rules of :mod:`backend.abtest.inputs` hold: one variant per user,
one row per user in a table, no user with more clicks than impressions, and errors that point at
rows without quoting the file.

The result is a ``pandas.DataFrame`` with the known columns present in the input (optional
count columns absent from it are left out), plus ``row``, the 0-based position of the user's
first input row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backend.abtest.counts import Unit, VariantCounts, check_unit
from backend.abtest.errors import AbTestInputError
from backend.abtest.inputs import (
    EVENT_COLUMNS,
    USER_TABLE_COLUMNS,
    _check_one_variant_per_user,
    _count_per_user,
    _require_columns,
    _rows,
    _whole_numbers,
    read_experiment_csv,
)

#: Per-user counts beyond impressions and clicks, each optional.
OPTIONAL_COUNTS = ("views", "purchases")
#: Per-user real numbers, optional.
OPTIONAL_VALUES = ("value",)
#: Every metric column a per-user table may carry (pre-period ones are ``pre_`` + these).
METRIC_COLUMNS = ("impressions", "clicks", *OPTIONAL_COUNTS, *OPTIONAL_VALUES)
#: Event types the event shape accepts, and the per-user column each one counts into.
EVENT_TYPE_COLUMNS = {
    "impression": "impressions",
    "click": "clicks",
    "view": "views",
    "purchase": "purchases",
    "rating": None,
}


def _finite_numbers(table: pd.DataFrame, column: str, what: str) -> np.ndarray:
    numbers = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        raise AbTestInputError(
            f"{what}: {column} must be finite numbers (not at {_rows(np.flatnonzero(bad))})"
        )
    return numbers


def _metric_columns(table: pd.DataFrame, what: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for prefix in ("", "pre_"):
        for base in METRIC_COLUMNS:
            column = prefix + base
            if column not in table.columns:
                continue
            if base in OPTIONAL_VALUES:
                out[column] = _finite_numbers(table, column, what)
                continue
            values = _whole_numbers(table, column, what)
            negative = values < 0
            if negative.any():
                raise AbTestInputError(
                    f"{what}: {column} cannot be negative ({_rows(np.flatnonzero(negative))})"
                )
            out[column] = values
    return out


def users_from_table(table: pd.DataFrame, *, source: str = "user table") -> pd.DataFrame:
    """The per-user table, checked (see the module doc)."""
    _require_columns(table, USER_TABLE_COLUMNS, source)
    frame = pd.DataFrame(
        {
            "user": table["user"].astype(str).to_numpy(),
            "variant": table["variant"].astype(str).to_numpy(),
            **_metric_columns(table, source),
            "row": np.arange(len(table)),
        }
    )
    _check_one_variant_per_user(frame, source)
    repeated = frame["user"].duplicated().to_numpy()
    if repeated.any():
        raise AbTestInputError(
            f"{source}: {frame['user'][repeated].nunique()} user(s) have more than one row "
            f"(again at {_rows(np.flatnonzero(repeated))}); a per-user table has exactly one row "
            "per user (sum their counts)"
        )
    _count_per_user(frame, "user", source)  # the count checks (negative, clicks > impressions)
    return frame


def users_from_events(events: pd.DataFrame, *, source: str = "events") -> pd.DataFrame:
    """One row per user from event rows (see the module doc); ``value`` is summed per user when
    the events carry it."""
    _require_columns(events, EVENT_COLUMNS, source)
    types = events["type"].astype(str).str.strip().str.lower()
    unknown = ~types.isin(list(EVENT_TYPE_COLUMNS)).to_numpy()
    if unknown.any():
        raise AbTestInputError(
            f"{source} has {types[unknown].nunique()} unknown event type(s) "
            f"({_rows(np.flatnonzero(unknown))}); type must be one of "
            f"{', '.join(EVENT_TYPE_COLUMNS)}"
        )
    columns: dict[str, np.ndarray] = {
        "user": events["user"].astype(str).to_numpy(),
        "variant": events["variant"].astype(str).to_numpy(),
    }
    for event_type, column in EVENT_TYPE_COLUMNS.items():
        if column is not None:
            columns[column] = (types == event_type).astype(np.int64).to_numpy()
    if "value" in events.columns:
        value = pd.to_numeric(events["value"], errors="coerce").fillna(0.0)
        columns["value"] = _finite_numbers(pd.DataFrame({"value": value}), "value", source)
    frame = pd.DataFrame({**columns, "row": np.arange(len(events))})
    _check_one_variant_per_user(frame[["user", "variant"]].drop_duplicates(), source)
    sums = {c: (c, "sum") for c in columns if c not in ("user", "variant")}
    per_user = frame.groupby(["user", "variant"], sort=False, as_index=False).agg(
        **sums, row=("row", "min")
    )
    _count_per_user(per_user, "user", source)
    return per_user


def users_from_csv(path: str | Path) -> pd.DataFrame:
    """One row per user from a CSV file of events (a ``type`` column) or of users."""
    frame, shape = read_experiment_csv(path)
    if shape == "events":
        return users_from_events(frame, source="the CSV file")
    return users_from_table(frame, source="the CSV file")


def counts_from_users(users: pd.DataFrame, unit: Unit = "user") -> tuple[VariantCounts, ...]:
    """The per-variant counts of :mod:`backend.abtest.counts` in ``unit`` (users who clicked
    among exposed users, or raw impressions and clicks)."""
    return _count_per_user(users, check_unit(unit), "the per-user table")
