"""Interactions from events: hand-computed confidences, decay, negatives and the ratings path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.recsys.datasets import ratings_from_frame
from backend.recsys.errors import DataError
from backend.recsys.interactions import (
    COLUMNS,
    InteractionWeights,
    check_interactions,
    from_events,
    from_ratings,
)

DAY_MS = 86_400_000
T0 = 1_700_000_000_000  # epoch milliseconds


def _events() -> pd.DataFrame:
    rows = [
        ("u1", "i1", "view", None, T0),
        ("u1", "i1", "click", None, T0 + DAY_MS),
        ("u1", "i2", "rating", 5.0, T0 + DAY_MS),
        ("u1", "i3", "rating", 2.0, T0),
        ("u1", "i3", "impression", None, T0),
        ("u1", "i4", "impression", None, T0 + 2 * DAY_MS),
        ("u2", "i1", "purchase", None, T0 + 2 * DAY_MS),
        ("u2", "i1", "impression", None, T0),
    ]
    return pd.DataFrame(rows, columns=["user", "item", "type", "rating", "ts"])


def _by_pair(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[float, int]]:
    return {
        (u, i): (c, t)
        for u, i, c, t in frame[["user", "item", "confidence", "timestamp"]].itertuples(index=False)
    }


def test_weights_add_up_per_pair_and_low_ratings_and_impressions_drop() -> None:
    out = from_events(_events(), InteractionWeights())
    assert tuple(out.columns) == COLUMNS
    assert out.dtypes.to_dict() == {
        "user": np.dtype(object), "item": np.dtype(object),
        "confidence": np.dtype("float64"), "timestamp": np.dtype("int64"),
    }  # fmt: skip
    assert _by_pair(out) == {
        ("u1", "i1"): (1.0 + 2.0, (T0 + DAY_MS) // 1000),  # view + click, newest event
        ("u1", "i2"): (1.0, (T0 + DAY_MS) // 1000),  # a rating at the threshold
        ("u2", "i1"): (4.0, (T0 + 2 * DAY_MS) // 1000),  # purchase
    }
    # Sorted by (timestamp, user, item).
    assert out["timestamp"].is_monotonic_increasing


def test_impressions_without_a_positive_become_negatives() -> None:
    out = from_events(_events(), InteractionWeights(impression_negatives=True, impression=0.5))
    pairs = _by_pair(out)
    assert pairs[("u1", "i3")] == (-0.5, T0 // 1000)  # shown, rated low: a negative
    assert pairs[("u1", "i4")] == (-0.5, (T0 + 2 * DAY_MS) // 1000)
    assert pairs[("u2", "i1")][0] == 4.0  # shown and bought: the positive wins
    assert len(out) == 5


def test_half_life_decay_from_the_newest_event_or_from_now() -> None:
    weights = InteractionWeights(half_life_days=1.0)
    pairs = _by_pair(from_events(_events(), weights))
    # Newest event at T0 + 2 days: the view is 2 days old, the click and the rating 1 day.
    assert pairs[("u1", "i1")][0] == pytest.approx(1.0 * 0.25 + 2.0 * 0.5, abs=1e-12)
    assert pairs[("u1", "i2")][0] == pytest.approx(0.5, abs=1e-12)
    assert pairs[("u2", "i1")][0] == pytest.approx(4.0, abs=1e-12)
    later = (T0 + 4 * DAY_MS) / 1000  # epoch seconds
    pairs = _by_pair(from_events(_events(), weights, now=later))
    assert pairs[("u2", "i1")][0] == pytest.approx(4.0 * 0.25, abs=1e-12)
    stamp = pd.Timestamp(T0 + 4 * DAY_MS, unit="ms", tz="UTC").to_pydatetime()
    assert _by_pair(from_events(_events(), weights, now=stamp)) == pairs


def test_lake_timestamps_read_like_epoch_milliseconds() -> None:
    events = _events()
    lake = events.assign(ts=pd.to_datetime(events["ts"], unit="ms", utc=True))
    pd.testing.assert_frame_equal(from_events(lake), from_events(events))


def test_ratings_at_or_above_the_threshold_are_positives() -> None:
    frame = pd.DataFrame(
        {"user": ["a", "a", "b", "b"], "item": ["x", "y", "x", "z"],
         "rating": [4.0, 3.5, 5.0, 1.0], "timestamp": [10, 20, 30, 40]}
    )  # fmt: skip
    ratings = ratings_from_frame(frame, (1.0, 5.0), source="test")
    out = from_ratings(ratings, InteractionWeights(rating=2.0, rating_threshold=3.5))
    assert _by_pair(out) == {("a", "x"): (2.0, 10), ("a", "y"): (2.0, 20), ("b", "x"): (2.0, 30)}


def test_bad_frames_and_weights_are_refused() -> None:
    with pytest.raises(DataError, match="lack column"):
        from_events(pd.DataFrame({"user": ["u"], "item": ["i"]}))
    with pytest.raises(DataError, match="weight click must be at least 0"):
        InteractionWeights(click=-1.0)
    with pytest.raises(DataError, match="half_life_days must be above 0"):
        InteractionWeights(half_life_days=0.0)
    bad = pd.DataFrame({"user": ["u"], "item": ["i"], "confidence": [0.0], "timestamp": [1]})
    with pytest.raises(DataError, match="row 0: confidence must be a finite non-zero"):
        check_interactions(bad)
    twice = pd.DataFrame(
        {"user": ["u", "u"], "item": ["i", "i"], "confidence": [1.0, 2.0], "timestamp": [1, 2]}
    )
    with pytest.raises(DataError, match="pair twice"):
        check_interactions(twice)
    assert from_events(_events().iloc[:0]).empty
