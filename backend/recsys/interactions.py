"""Implicit feedback: how much each (user, item) pair says the user wants the item.

The lake's events become one confidence per (user, item):

``confidence(u, i) = Σ_e weight(type(e)) · decay(e)`` over the events ``e`` of the pair, where

* ``weight`` is ``view``, ``click`` or ``purchase`` for those types, ``rating`` for a rating at or
  above ``rating_threshold`` and 0 for a rating below it (a low rating is not a positive);
* ``decay(e) = 0.5 ** (age_days / half_life_days)`` with ``age_days`` measured back from ``now``
  (default: the newest event), or 1 when ``half_life_days`` is None.

Pairs whose confidence is 0 are dropped. With ``impression_negatives``, a pair that was shown
(an ``impression`` event) and has no positive event gets confidence ``-impression`` instead: a
negative preference, which both ``implicit_models`` (through the ``implicit`` package) and
Spark's implicit ALS read as ``p = 0`` with confidence ``1 + alpha·|r|``. ``timestamp`` is the
newest event of the pair (any type), in seconds, so that a temporal split can hold out each
user's latest interactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from backend.recsys.datasets import Ratings
from backend.recsys.errors import DataError

#: Columns of an interactions frame, in order.
COLUMNS: tuple[str, ...] = ("user", "item", "confidence", "timestamp")


@dataclass(frozen=True)
class InteractionWeights:
    """Confidence per event type, the positive-rating threshold, negatives and time decay."""

    view: float = 1.0
    click: float = 2.0
    purchase: float = 4.0
    rating: float = 1.0
    rating_threshold: float = 4.0
    impression_negatives: bool = False
    impression: float = 1.0
    half_life_days: float | None = None

    def __post_init__(self) -> None:
        for name in ("view", "click", "purchase", "rating", "impression"):
            value = getattr(self, name)
            if not value >= 0:
                raise DataError(f"weight {name} must be at least 0; got {value}")
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise DataError(f"half_life_days must be above 0; got {self.half_life_days}")


#: Event types that can carry a positive weight, and the weight field of each.
_POSITIVE_TYPES: dict[str, str] = {"view": "view", "click": "click", "purchase": "purchase"}
_SECONDS_PER_DAY = 86_400.0


def from_events(
    events: pd.DataFrame,
    weights: InteractionWeights | None = None,
    now: datetime | pd.Timestamp | float | None = None,
) -> pd.DataFrame:
    """One confidence per (user, item) from the lake's events (module docstring).

    ``events`` has the lake's columns ``user``, ``item``, ``type``, ``rating`` and ``ts``
    (a UTC timestamp, or integer epoch milliseconds as in the event contract); other columns are
    ignored. ``now`` (a datetime or epoch seconds) anchors the decay; by default the newest
    event. Ages are taken to the millisecond and are not clipped: an event after ``now`` decays
    by a factor above 1. Returns a frame with ``COLUMNS``, sorted by (timestamp, user, item).
    """
    w = weights or InteractionWeights()
    missing = [c for c in ("user", "item", "type", "ts") if c not in events.columns]
    if missing:
        raise DataError(f"the events lack column(s) {', '.join(missing)}")
    if events.empty:
        return _empty()
    ms = _epoch_ms(events["ts"])
    kinds = events["type"].astype(str).to_numpy()
    base = np.zeros(len(events), dtype=np.float64)
    for kind, name in _POSITIVE_TYPES.items():
        base[kinds == kind] = getattr(w, name)
    if "rating" in events.columns:
        rating = pd.to_numeric(events["rating"], errors="coerce").to_numpy(np.float64)
        # NaN compares False, so a rating event without a value counts as a low rating.
        positive_rating = (kinds == "rating") & (rating >= w.rating_threshold)
        base[positive_rating] = w.rating
    if w.half_life_days is not None:
        anchor_ms = float(ms.max()) if now is None else _now_ms(now)
        age_days = (anchor_ms - ms.astype(np.float64)) / 1000.0 / _SECONDS_PER_DAY
        base = base * np.power(0.5, age_days / w.half_life_days)
    frame = pd.DataFrame(
        {
            "user": events["user"].astype(str).to_numpy(),
            "item": events["item"].astype(str).to_numpy(),
            "value": base,
            "ms": ms,
            "shown": kinds == "impression",
        }
    )
    pairs = frame.groupby(["user", "item"], sort=False).agg(
        confidence=("value", "sum"), ms=("ms", "max"), shown=("shown", "any")
    )
    confidence = pairs["confidence"].to_numpy(np.float64)
    if w.impression_negatives:
        negative = (confidence == 0) & pairs["shown"].to_numpy()
        confidence = np.where(negative, -w.impression, confidence)
    out = pd.DataFrame(
        {
            "user": pairs.index.get_level_values("user").astype(str),
            "item": pairs.index.get_level_values("item").astype(str),
            "confidence": confidence,
            "timestamp": np.floor_divide(pairs["ms"].to_numpy(np.int64), 1000),
        }
    )
    out = out.loc[out["confidence"] != 0]
    return _ordered(out)


def from_ratings(ratings: Ratings, weights: InteractionWeights | None = None) -> pd.DataFrame:
    """The interactions of explicit ratings: each rating is a ``rating`` event at its timestamp.

    Ratings at or above ``weights.rating_threshold`` become positives of confidence
    ``weights.rating`` (decayed from the newest rating when ``half_life_days`` is set); lower
    ones are dropped (ratings carry no impressions, so there are no negatives).
    """
    frame = ratings.frame
    events = pd.DataFrame(
        {
            "user": frame["user"].to_numpy(),
            "item": frame["item"].to_numpy(),
            "type": "rating",
            "rating": frame["rating"].to_numpy(np.float64),
            "ts": frame["timestamp"].to_numpy(np.int64) * 1000,
        }
    )
    return from_events(events, weights)


def check_interactions(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as an interactions frame (``COLUMNS``, typed), or ``DataError`` naming the fault.

    Confidences must be finite and non-zero; a (user, item) pair may appear once.
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"interactions lack column(s) {', '.join(missing)}")
    if frame.empty:
        raise DataError("there are no interactions to train on")
    confidence = pd.to_numeric(frame["confidence"], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(confidence) | (confidence == 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"interaction row {row}: confidence must be a finite non-zero number")
    out = pd.DataFrame(
        {
            "user": frame["user"].astype(str).to_numpy(),
            "item": frame["item"].astype(str).to_numpy(),
            "confidence": confidence,
            "timestamp": pd.to_numeric(frame["timestamp"]).to_numpy(np.int64),
        }
    )
    if out.duplicated(["user", "item"]).any():
        raise DataError("interactions hold a (user, item) pair twice; give one row per pair")
    return out


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.astype({"confidence": "float64", "timestamp": "int64"})
    out = out.sort_values(["timestamp", "user", "item"], kind="stable")
    return out.reset_index(drop=True)[list(COLUMNS)]


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": pd.Series([], dtype=object),
            "item": pd.Series([], dtype=object),
            "confidence": pd.Series([], dtype="float64"),
            "timestamp": pd.Series([], dtype="int64"),
        }
    )


def _epoch_ms(values: pd.Series) -> npt.NDArray[np.int64]:
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values, utc=True)
        delta = stamps - pd.Timestamp(0, tz="UTC")
        return np.asarray(delta // pd.Timedelta(milliseconds=1), dtype=np.int64)
    if not pd.api.types.is_integer_dtype(values):
        raise DataError("ts must be a timestamp or integer epoch milliseconds")
    return values.to_numpy(np.int64)


def _now_ms(now: datetime | pd.Timestamp | float) -> float:
    if isinstance(now, datetime):
        stamp = pd.Timestamp(now)
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize("UTC")
        return float((stamp - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(milliseconds=1))
    return float(now) * 1000.0
