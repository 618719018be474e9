from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backend.pipeline.interactions import interactions, ratings
from backend.recsys.interactions import COLUMNS, InteractionWeights
from tests.unit.pipeline.lake_builder import event, write_batch

T0 = 1_699_920_000  # 2023-11-14T00:00:00Z
DAY = 86_400


def build_lake(lake: Path) -> None:
    write_batch(
        lake,
        0,
        [
            event("a1", "u1", "i1", "view", T0),
            event("a2", "u1", "i1", "click", T0 + DAY),
            event("a3", "u1", "i2", "rating", T0, rating=5.0),
            event("a4", "u1", "i3", "rating", T0, rating=2.0),
            event("a5", "u2", "i1", "purchase", T0 + 2 * DAY),
            event("a6", "u2", "i2", "impression", T0 + DAY),
            event("a7", "u2", "i3", "impression", T0),
            event("a8", "u2", "i3", "view", T0 + 3),
        ],
    )
    write_batch(lake, 1, [event("b1", "u1", "i2", "rating", T0 + DAY, rating=4.0)])


def as_frame(frame: Any) -> pd.DataFrame:
    out = frame.toPandas()
    return out.sort_values(["user", "item"]).reset_index(drop=True)


def expected(rows: list[tuple[str, str, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype(
        {"confidence": "float64", "timestamp": "int64"}
    )


def test_confidence_sums_the_weights_and_drops_low_ratings(spark: Any, tmp_path: Path) -> None:
    build_lake(tmp_path)
    got = as_frame(interactions(spark, tmp_path, InteractionWeights()))
    want = expected(
        [
            ("u1", "i1", 1.0 + 2.0, T0 + DAY),
            ("u1", "i2", 1.0 + 1.0, T0 + DAY),  # two ratings at or above the threshold
            ("u2", "i1", 4.0, T0 + 2 * DAY),
            ("u2", "i3", 1.0, T0 + 3),  # the impression carries no weight
        ]
    )
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_impressions_without_a_positive_become_negatives(spark: Any, tmp_path: Path) -> None:
    build_lake(tmp_path)
    weights = InteractionWeights(impression_negatives=True, impression=0.5)
    got = as_frame(interactions(spark, tmp_path, weights))
    row = got.set_index(["user", "item"])["confidence"]
    assert row[("u2", "i2")] == -0.5
    assert row[("u2", "i3")] == 1.0  # shown and viewed: the view wins
    assert ("u1", "i3") not in row.index  # a low rating alone is no interaction


def test_decay_halves_the_weight_every_half_life(spark: Any, tmp_path: Path) -> None:
    build_lake(tmp_path)
    weights = InteractionWeights(half_life_days=1.0)
    got = as_frame(interactions(spark, tmp_path, weights)).set_index(["user", "item"])
    # "now" is the newest event, T0 + 2 days.
    assert got.loc[("u1", "i1"), "confidence"] == pytest.approx(1.0 * 0.25 + 2.0 * 0.5)
    assert got.loc[("u2", "i1"), "confidence"] == pytest.approx(4.0)
    later = as_frame(interactions(spark, tmp_path, weights, now_s=T0 + 3 * DAY))
    assert later.set_index(["user", "item"]).loc[("u2", "i1"), "confidence"] == pytest.approx(2.0)


def test_ratings_keep_the_latest_rating_per_pair(spark: Any, tmp_path: Path) -> None:
    build_lake(tmp_path)
    got = ratings(spark, tmp_path).toPandas().sort_values(["user", "item"])
    assert got[["user", "item", "rating", "timestamp"]].values.tolist() == [
        ["u1", "i2", 4.0, T0 + DAY],
        ["u1", "i3", 2.0, T0],
    ]


def test_spark_matches_the_pandas_interactions(spark: Any, tmp_path: Path) -> None:
    from backend.recsys import interactions as core

    from_events = getattr(core, "from_events", None)
    if from_events is None:
        pytest.skip("backend.recsys.interactions.from_events is not there yet")
    from backend.lake.readers import read_events

    build_lake(tmp_path)
    for weights in (
        InteractionWeights(),
        InteractionWeights(impression_negatives=True, half_life_days=2.0),
    ):
        events = read_events(tmp_path)
        mine = as_frame(interactions(spark, tmp_path, weights))
        theirs = from_events(events, weights)
        theirs = theirs.sort_values(["user", "item"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(mine[list(COLUMNS)], theirs[list(COLUMNS)], check_dtype=False)
