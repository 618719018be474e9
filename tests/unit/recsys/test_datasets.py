"""Rating loaders: every format, de-duplication, fingerprints and each bad-input error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.recsys.datasets import (
    RatingsSource,
    load_items,
    load_ratings,
    ratings_from_frame,
)
from backend.recsys.errors import DataError


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_ml100k_loads_the_documented_counts(ml100k_dir: Path) -> None:
    ratings = load_ratings(RatingsSource("ml-100k", ml100k_dir))
    frame = ratings.frame
    assert (ratings.n_ratings, ratings.n_users, ratings.n_items) == (100_000, 943, 1682)
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"]
    assert frame["rating"].dtype == np.float64 and frame["timestamp"].dtype == np.int64
    assert isinstance(frame["user"].iat[0], str) and isinstance(frame["item"].iat[0], str)
    assert ratings.scale == (1.0, 5.0)
    assert ratings.duplicates_dropped == 0
    # File order is kept: the first line of u.data is "196 242 3 881250949".
    assert frame.iloc[0].tolist() == ["196", "242", 3.0, 881250949]


def test_ml100k_items_have_titles_and_genre_lists(ml100k_dir: Path) -> None:
    items = load_items(ml100k_dir, "ml-100k")
    assert len(items) == 1682
    toy = items.loc[items["item"] == "1"].iloc[0]
    assert toy["title"] == "Toy Story (1995)"
    assert toy["genres"] == ["Animation", "Children's", "Comedy"]


def test_ml1m_format_reads_double_colon_latin1(tmp_path: Path) -> None:
    text = "1::10::5::978300760\n1::11::3::978302109\n2::10::4::978301968\n"
    (tmp_path / "ratings.dat").write_bytes(text.encode("latin-1"))
    ratings = load_ratings(RatingsSource("ml-1m", tmp_path))
    assert ratings.frame.values.tolist() == [
        ["1", "10", 5.0, 978300760],
        ["1", "11", 3.0, 978302109],
        ["2", "10", 4.0, 978301968],
    ]


def test_ml1m_item_metadata(tmp_path: Path) -> None:
    text = "1::Amélie (2001)::Comedy|Romance\n2::Heat (1995)::Action\n"
    (tmp_path / "movies.dat").write_bytes(text.encode("latin-1"))
    items = load_items(tmp_path, "ml-1m")
    assert items["title"].tolist() == ["Amélie (2001)", "Heat (1995)"]
    assert items["genres"].tolist() == [["Comedy", "Romance"], ["Action"]]


def test_ml_latest_has_half_stars_and_its_own_scale(tmp_path: Path) -> None:
    _csv(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.5,964982703\n1,3,0.5,964981247\n2,1,3.0,9649\n",
    )
    ratings = load_ratings(RatingsSource("ml-latest", tmp_path))
    assert ratings.scale == (0.5, 5.0)
    assert ratings.frame["rating"].tolist() == [4.5, 0.5, 3.0]


def test_generic_csv_with_custom_columns_and_separator(tmp_path: Path) -> None:
    path = _csv(tmp_path / "r.csv", "who;what;stars;extra\nann;x;2;a\nbob;y;10;b\nann;y;7;c\n")
    spec = RatingsSource(
        "csv", path, user_col="who", item_col="what", rating_col="stars",
        timestamp_col=None, scale=(1, 10), sep=";",
    )  # fmt: skip
    ratings = load_ratings(spec)
    assert ratings.frame["user"].tolist() == ["ann", "bob", "ann"]
    # Without a time column, row order stands in for time.
    assert ratings.frame["timestamp"].tolist() == [0, 1, 2]
    assert ratings.scale == (1.0, 10.0)


def test_ids_stay_text(tmp_path: Path) -> None:
    path = _csv(tmp_path / "r.csv", "user,item,rating,timestamp\n007,1,3,1\n7,2,4,2\n")
    ratings = load_ratings(RatingsSource("csv", path))
    assert ratings.frame["user"].tolist() == ["007", "7"]


def test_parquet_file(tmp_path: Path) -> None:
    frame = pd.DataFrame({"u": [1, 2, 3], "i": [5, 5, 6], "r": [1.0, 2.5, 5.0], "t": [3, 2, 1]})
    frame.to_parquet(tmp_path / "r.parquet")
    spec = RatingsSource(
        "parquet", tmp_path / "r.parquet", user_col="u", item_col="i", rating_col="r",
        timestamp_col="t",
    )  # fmt: skip
    ratings = load_ratings(spec)
    assert ratings.frame["user"].tolist() == ["1", "2", "3"]
    assert ratings.frame["timestamp"].tolist() == [3, 2, 1]


def test_lake_reads_partitions_and_skips_events_without_rating(tmp_path: Path) -> None:
    day1 = tmp_path / "date=2024-01-01"
    day2 = tmp_path / "date=2024-01-02"
    day1.mkdir()
    day2.mkdir()
    pd.DataFrame(
        {
            "user": ["a", "a", "b"],
            "item": ["x", "y", "x"],
            "rating": [4.0, None, 2.0],
            "timestamp": pd.to_datetime([10, 11, 12], unit="s", utc=True),
            "event": ["rate", "click", "rate"],
        }
    ).to_parquet(day1 / "part-0.parquet")
    pd.DataFrame(
        {
            "user": ["a", "c"],
            "item": ["x", "z"],
            "rating": [5.0, 1.0],
            "timestamp": pd.to_datetime([20, 21], unit="s", utc=True),
            "event": ["rate", "view"],
        }
    ).to_parquet(day2 / "part-0.parquet")
    ratings = load_ratings(RatingsSource("lake", tmp_path))
    assert ratings.unrated_rows == 1
    # (a, x) was rated twice; the later rating (5.0 at t=20) is kept.
    assert ratings.duplicates_dropped == 1
    rows = sorted(map(tuple, ratings.frame.values.tolist()))
    assert rows == [("a", "x", 5.0, 20), ("b", "x", 2.0, 12), ("c", "z", 1.0, 21)]


def test_latest_duplicate_wins_and_ties_go_to_the_later_row() -> None:
    raw = pd.DataFrame(
        {
            "user": ["a", "a", "b", "a", "b"],
            "item": ["x", "x", "y", "z", "y"],
            "rating": [1.0, 2.0, 3.0, 4.0, 5.0],
            "timestamp": [5, 3, 7, 1, 7],
        }
    )
    ratings = ratings_from_frame(raw, (1, 5))
    assert ratings.duplicates_dropped == 2
    assert ratings.frame.values.tolist() == [
        ["a", "x", 1.0, 5],  # the newer of a/x even though it comes first
        ["a", "z", 4.0, 1],
        ["b", "y", 5.0, 7],  # equal timestamps: the later row
    ]


def test_fingerprint_ignores_row_order_but_not_content() -> None:
    raw = pd.DataFrame(
        {"user": ["a", "b", "c"], "item": ["x", "y", "x"], "rating": [1.0, 2.0, 3.0],
         "timestamp": [1, 2, 3]}
    )  # fmt: skip
    one = ratings_from_frame(raw, (1, 5)).fingerprint
    shuffled = ratings_from_frame(raw.iloc[[2, 0, 1]], (1, 5)).fingerprint
    changed = raw.copy()
    changed.loc[0, "rating"] = 1.5
    assert one == shuffled
    assert one != ratings_from_frame(changed, (1, 5)).fingerprint
    assert len(one) == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user,item,rating,timestamp\n", "contains no ratings"),
        ("user,item,rating,timestamp\na,x,3,1\na,y,4,2\n", "single user"),
        ("user,item,rating,timestamp\na,x,3,1\nb,y,7.0,2\n", "rating at row 2"),
        ("user,item,rating,timestamp\na,x,3,1\nb,y,,2\n", "missing (NaN) at row 2"),
        (
            "user,item,rating,timestamp\na,x,3,1\nb,y,inf,2\n",
            "rating at row 2 of the CSV file is not finite",
        ),
        (
            "user,item,rating,timestamp\na,x,3,1\nb,y,good,2\n",
            "rating at row 2 of the CSV file is not a number",
        ),
        ("user,item,stars,timestamp\na,x,3,1\nb,y,4,2\n", "no column(s) 'rating'"),
        ("user,item,rating,timestamp\na,x,3,1\n,y,4,2\n", "user id is missing at row 2"),
        ("user,item,rating,timestamp\na,x,3,1\nb,y,4,yesterday\n", "timestamp at row 2 of"),
    ],
)
def test_bad_input_is_a_clear_data_error(tmp_path: Path, text: str, message: str) -> None:
    path = _csv(tmp_path / "r.csv", text)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_ratings(RatingsSource("csv", path))


def test_out_of_scale_message_names_row_and_scale_not_the_value(tmp_path: Path) -> None:
    path = _csv(tmp_path / "r.csv", "user,item,rating,timestamp\na,x,3,1\nb,y,7.0,2\n")
    with pytest.raises(DataError) as info:
        load_ratings(RatingsSource("csv", path))
    assert "rating at row 2" in str(info.value)
    assert "outside the declared scale 1-5" in str(info.value)
    assert "7" not in str(info.value)


def test_missing_column_message_counts_the_columns_without_quoting_them(tmp_path: Path) -> None:
    # A column name found in the file is file content: the message counts, it does not list.
    path = _csv(tmp_path / "r.csv", "uid,item,rating,timestamp\na,x,3,1\nb,y,4,2\n")
    with pytest.raises(DataError, match=r"no column\(s\) 'user' \(it has 4 column\(s\)\)") as info:
        load_ratings(RatingsSource("csv", path))
    assert "uid" not in str(info.value)


def test_errors_never_quote_file_contents_or_server_paths(tmp_path: Path) -> None:
    secret = "tok-93be11"
    texts = [
        f"user,item,{secret}\na,x,3\n",
        f"user,item,rating,timestamp\na,x,3,1\nb,y,{secret},2\n",
        f"user,item,rating,timestamp\na,x,3,1\nb,y,4,{secret}\n",
        f"user,item,rating,timestamp\n{secret},x,3,1\n{secret},y,4,2\n",
        f"user,item,rating,timestamp\na,{secret},3,1\nb,{secret},4,2\n",
        f'user,item,rating,timestamp\n"a,x,3,1\n{secret}\n',
    ]
    for n, text in enumerate(texts):
        path = _csv(tmp_path / f"r{n}.csv", text)
        with pytest.raises(DataError) as info:
            load_ratings(RatingsSource("csv", path))
        message = str(info.value)
        assert secret not in message and str(tmp_path) not in message, message
    (tmp_path / "bad.parquet").write_text(secret)
    with pytest.raises(DataError) as info:
        load_ratings(RatingsSource("parquet", tmp_path / "bad.parquet"))
    assert secret not in str(info.value) and str(tmp_path) not in str(info.value)


def test_single_item_and_unknown_format_and_bad_scale(tmp_path: Path) -> None:
    path = _csv(tmp_path / "r.csv", "user,item,rating,timestamp\na,x,3,1\nb,x,4,2\n")
    with pytest.raises(DataError, match="single item"):
        load_ratings(RatingsSource("csv", path))
    with pytest.raises(DataError, match="unknown ratings format 'xls'"):
        load_ratings(RatingsSource("xls", path))  # type: ignore[arg-type]
    with pytest.raises(DataError, match="low < high"):
        load_ratings(RatingsSource("csv", path, scale=(5, 1)))


def test_missing_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_ratings(RatingsSource("csv", tmp_path / "nope.csv"))
    with pytest.raises(DataError, match=r"expected the file u\.data"):
        load_ratings(RatingsSource("ml-100k", tmp_path))
    with pytest.raises(DataError, match=r"contains no \.parquet files"):
        load_ratings(RatingsSource("lake", tmp_path))
