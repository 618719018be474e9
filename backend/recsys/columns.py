"""The columns of a ratings frame, checked one by one: ids, ratings on a scale, timestamps.

Each check names the row and the count of bad rows, never a value from the file, and raises a
``DataError``. ``keep_latest`` keeps the last rating of each (user, item) pair by time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.recsys.errors import DataError


def check_scale(scale: tuple[float, float]) -> tuple[float, float]:
    """``(low, high)`` as finite floats with low < high."""
    try:
        low, high = float(scale[0]), float(scale[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise DataError(f"rating scale {scale!r} must be two numbers (low, high)") from exc
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise DataError(f"rating scale {low:g}-{high:g} must be finite with low < high")
    return low, high


def id_column(column: pd.Series, what: str, source: str) -> np.ndarray:
    """Ids as non-empty strings; integral floats (Parquet's nullable ints) lose their ``.0``."""
    missing = column.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0]) + 1
        raise DataError(f"{what} is missing at row {row} of {source} ({int(missing.sum())} rows)")
    if pd.api.types.is_float_dtype(column.dtype):
        values = column.to_numpy(np.float64)
        if np.all(values == np.round(values)):
            # Parquet writes nullable integer ids as floats; 12.0 means id "12".
            return values.astype(np.int64).astype(str).astype(object)
    out = column.astype(str).str.strip().to_numpy(object)
    empty = out == ""
    if empty.any():
        row = int(np.flatnonzero(empty)[0]) + 1
        raise DataError(f"{what} is empty at row {row} of {source}")
    return out


def rating_column(column: pd.Series, low: float, high: float, source: str) -> np.ndarray:
    """Ratings as finite float64 within ``[low, high]``; no missing, text or boolean values."""
    if pd.api.types.is_bool_dtype(column.dtype):
        raise DataError(
            f"ratings in {source} are true/false values; explicit ratings must be numbers"
        )
    values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    was_missing = column.isna().to_numpy()
    bad_text = np.isnan(values) & ~was_missing
    if bad_text.any():
        row = int(np.flatnonzero(bad_text)[0])
        raise DataError(
            f"the rating at row {row + 1} of {source} is not a number "
            f"({int(bad_text.sum())} such rows)"
        )
    if was_missing.any():
        row = int(np.flatnonzero(was_missing)[0]) + 1
        raise DataError(
            f"rating is missing (NaN) at row {row} of {source} ({int(was_missing.sum())} rows); "
            "remove those rows or fill them"
        )
    infinite = ~np.isfinite(values)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise DataError(f"the rating at row {row + 1} of {source} is not finite")
    outside = (values < low) | (values > high)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise DataError(
            f"the rating at row {row + 1} of {source} is outside the declared scale "
            f"{low:g}-{high:g} ({int(outside.sum())} such rows); fix the data or declare the scale"
        )
    return values


def timestamp_column(column: pd.Series, source: str) -> np.ndarray:
    """Seconds since 1970 (UTC) as int64, from numbers or datetimes."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        if column.isna().any():
            row = int(np.flatnonzero(column.isna().to_numpy())[0]) + 1
            raise DataError(f"timestamp is missing at row {row} of {source}")
        stamps = pd.DatetimeIndex(column)
        if stamps.tz is not None:
            stamps = stamps.tz_convert("UTC").tz_localize(None)
        return np.asarray(stamps.as_unit("s").asi8, dtype=np.int64)
    values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"the timestamp at row {row + 1} of {source} is not a number of seconds since 1970"
        )
    return values.astype(np.int64)


def keep_latest(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The frame with one row per (user, item), the latest by time; and how many were dropped."""
    # Stable sort by time, so on equal timestamps the later row wins; then restore file order.
    by_time = frame.sort_values("timestamp", kind="stable")
    keep = ~by_time.duplicated(["user", "item"], keep="last")
    kept = np.sort(by_time.index.to_numpy()[keep.to_numpy()])
    dropped = len(frame) - len(kept)
    if dropped:
        frame = frame.loc[kept]
    return frame.reset_index(drop=True), dropped
