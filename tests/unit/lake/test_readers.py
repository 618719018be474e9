from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backend.lake import readers as lake
from backend.lake.readers import LakeEmptyError
from tests.unit.pipeline.lake_builder import event, write_batch

T0 = 1_700_000_000  # 2023-11-14


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    write_batch(
        root,
        0,
        [
            event("r1", "u1", "i1", "rating", T0, rating=3.0),
            event("r2", "u1", "i1", "rating", T0 + 10, rating=5.0),
            event("r3", "u2", "i1", "rating", T0 + 86_400, rating=2.0),
            event("c1", "u1", "i2", "impression", T0 + 1, experiment="home", variant="A"),
            event("c2", "u1", "i2", "click", T0 + 2, experiment="home", variant="A"),
            event("c3", "u3", "i2", "impression", T0 + 3, experiment="home", variant="B"),
            event("v1", "u3", "i2", "view", T0 + 4, experiment="home", variant="B"),
            event("x1", "u3", "i9", "impression", T0 + 5, experiment="other", variant="A"),
        ],
    )
    write_batch(root, 1, [event("r4", "u2", "i1", "rating", T0 + 5, rating=4.0)])
    return root


def test_read_ratings_keeps_the_latest_rating_per_pair(lake_dir: Path) -> None:
    ratings = lake.read_ratings(lake_dir)
    assert list(ratings.columns) == ["user", "item", "rating", "timestamp"]
    assert ratings.dtypes["timestamp"] == "int64" and ratings.dtypes["rating"] == "float64"
    got = {(r.user, r.item): (r.rating, r.timestamp) for r in ratings.itertuples()}
    assert got == {("u1", "i1"): (5.0, T0 + 10), ("u2", "i1"): (2.0, T0 + 86_400)}


def test_read_experiment_events(lake_dir: Path) -> None:
    frame = lake.read_experiment_events(lake_dir, "home")
    assert list(frame.columns) == ["user", "variant", "type", "ts"]
    assert frame[["user", "variant", "type"]].values.tolist() == [
        ["u1", "A", "impression"],
        ["u1", "A", "click"],
        ["u3", "B", "impression"],
    ]
    assert str(frame["ts"].dt.tz) == "UTC"


def test_unknown_experiment_names_the_known_ones(lake_dir: Path) -> None:
    with pytest.raises(LakeEmptyError, match="home, other"):
        lake.read_experiment_events(lake_dir, "nope")


def test_list_experiments(lake_dir: Path, tmp_path: Path) -> None:
    assert lake.list_experiments(lake_dir) == ["home", "other"]
    assert lake.list_experiments(tmp_path / "empty") == []


def test_empty_or_missing_lake_is_a_clear_error(tmp_path: Path) -> None:
    for reader in (lake.read_ratings, lake.read_quarantine, lake.read_events):
        with pytest.raises(LakeEmptyError, match="ingest events first"):
            reader(tmp_path / "missing")
    assert issubclass(LakeEmptyError, ValueError)


def test_lake_without_ratings(tmp_path: Path) -> None:
    write_batch(tmp_path, 0, [event("c", "u", "i", "click", T0)])
    with pytest.raises(LakeEmptyError, match="no rating events"):
        lake.read_ratings(tmp_path)


def test_plain_pandas_reads_the_events_table(lake_dir: Path) -> None:
    # The recsys "lake" source reads <lake>/events with pandas; the batch directories add no column.
    frame = pd.read_parquet(lake_dir / "events")
    assert len(frame) == 9 and "dt" in frame.columns


def test_read_experiment_users_with_a_pre_period(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    write_batch(
        root,
        0,
        [
            event("p1", "u1", "i1", "impression", T0 - 100),
            event("p2", "u1", "i1", "click", T0 - 90),
            event("p3", "u9", "i1", "impression", T0 - 80),  # not in the experiment
            event("p4", "u1", "i1", "impression", T0 - 3 * 86_400),  # before the pre-period
            event("c1", "u1", "i2", "impression", T0 + 1, experiment="home", variant="A"),
            event("c2", "u1", "i2", "click", T0 + 2, experiment="home", variant="A"),
            event("c3", "u3", "i2", "impression", T0 + 3, experiment="home", variant="B"),
            event("c4", "u3", "i2", "purchase", T0 + 4, experiment="home", variant="B"),
            event("c5", "u3", "i2", "rating", T0 + 4, experiment="home", variant="B", rating=4.0),
            event("x1", "u3", "i9", "impression", T0 + 5, experiment="other", variant="A"),
        ],
    )
    got = lake.read_experiment_users(root, "home", pre_period=pd.Timedelta(days=1))
    assert got.start == pd.Timestamp(T0 + 1, unit="s", tz="UTC")
    assert got.pre_start == got.start - pd.Timedelta(days=1)
    rows = got.users.set_index("user")
    assert rows.loc["u1", ["variant", "impressions", "clicks", "purchases"]].tolist() == [
        "A",
        1,
        1,
        0,
    ]
    assert rows.loc["u3", ["impressions", "purchases", "views"]].tolist() == [1, 1, 0]
    assert rows.loc["u1", ["pre_impressions", "pre_clicks"]].tolist() == [1, 1]
    assert rows.loc["u3", ["pre_impressions", "pre_clicks"]].tolist() == [0, 0]
    later = lake.read_experiment_users(
        root, "home", start=pd.Timestamp(T0 + 3, unit="s", tz="UTC").to_pydatetime()
    )
    assert later.users["user"].tolist() == ["u3"] and "pre_clicks" not in later.users
    with pytest.raises(LakeEmptyError, match="home, other"):
        lake.read_experiment_users(root, "nope")
