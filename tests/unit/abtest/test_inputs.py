"""Reading counts from event rows, per-user tables and CSV files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backend.abtest.counts import VariantCounts
from backend.abtest.errors import AbTestInputError
from backend.abtest.inputs import counts_from_csv, counts_from_events, counts_from_user_table

EVENTS = pd.DataFrame(
    [
        ("u1", "A", "impression"),
        ("u1", "A", "impression"),
        ("u1", "A", "click"),
        ("u2", "A", "impression"),
        ("u3", "A", "impression"),
        ("u4", "B", "impression"),
        ("u4", "B", "impression"),
        ("u4", "B", "impression"),
        ("u4", "B", "click"),
        ("u4", "B", "click"),
        ("u5", "B", " Impression "),
        ("u5", "B", "CLICK"),
    ],
    columns=["user", "variant", "type"],
)
TABLE = pd.DataFrame(
    {
        "user": ["u1", "u2", "u3", "u4", "u5", "u6"],
        "variant": ["A", "A", "A", "B", "B", "B"],
        "impressions": [2, 1, 1, 3, 1, 0],
        "clicks": [1, 0, 0, 2, 1, 0],
    }
)


def test_events_per_user_count_each_user_once() -> None:
    assert counts_from_events(EVENTS) == (
        VariantCounts("A", units=3, impressions=3, clicks=1),
        VariantCounts("B", units=2, impressions=2, clicks=2),
    )


def test_events_per_impression_count_every_event() -> None:
    assert counts_from_events(EVENTS, unit="impression") == (
        VariantCounts("A", units=3, impressions=4, clicks=1),
        VariantCounts("B", units=2, impressions=4, clicks=3),
    )


def test_user_table_per_user_and_per_impression() -> None:
    assert counts_from_user_table(TABLE) == (
        VariantCounts("A", 3, 3, 1),
        VariantCounts("B", 3, 2, 2),  # u6 is assigned but never exposed
    )
    assert counts_from_user_table(TABLE, unit="impression") == (
        VariantCounts("A", 3, 4, 1),
        VariantCounts("B", 3, 4, 3),
    )


def test_csv_shapes_are_detected(tmp_path: Path) -> None:
    events_csv = tmp_path / "events.csv"
    EVENTS.to_csv(events_csv, index=False)
    table_csv = tmp_path / "users.csv"
    TABLE.assign(country="x").to_csv(table_csv, index=False)
    assert counts_from_csv(events_csv) == counts_from_events(EVENTS)
    assert counts_from_csv(table_csv, unit="impression") == counts_from_user_table(
        TABLE, unit="impression"
    )


def test_csv_keeps_ids_as_text(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("user,variant,impressions,clicks\n007,1,1,1\n7,1,1,0\n")
    assert counts_from_csv(path) == (VariantCounts("1", 2, 2, 1),)


def test_csv_with_unknown_columns_names_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("user,variant,views\nu1,A,3\n")
    with pytest.raises(AbTestInputError) as info:
        counts_from_csv(path)
    message = str(info.value)
    assert "missing type" in message and "missing impressions, clicks" in message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("user,variant,type\n", "has no rows"),
        ("user,variant,type,impressions,clicks\nu1,A,click,1,1\n", "both a type column"),
    ],
)
def test_csv_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(AbTestInputError, match=message):
        counts_from_csv(path)


def test_missing_csv_file(tmp_path: Path) -> None:
    with pytest.raises(AbTestInputError, match="does not exist"):
        counts_from_csv(tmp_path / "nope.csv")


def test_events_missing_column_and_empty() -> None:
    with pytest.raises(AbTestInputError, match="missing column"):
        counts_from_events(EVENTS.drop(columns="type"))
    with pytest.raises(AbTestInputError, match="has no rows"):
        counts_from_events(EVENTS.iloc[:0])


def test_events_with_unknown_type() -> None:
    bad = pd.concat([EVENTS, pd.DataFrame([("u1", "A", "purchase")], columns=EVENTS.columns)])
    with pytest.raises(AbTestInputError, match=r"unknown event type.*purchase"):
        counts_from_events(bad)


def test_events_with_click_but_no_impression() -> None:
    bad = pd.concat([EVENTS, pd.DataFrame([("u9", "B", "click")], columns=EVENTS.columns)])
    with pytest.raises(AbTestInputError, match=r"user u9 in variant B has 1 clicks but only 0"):
        counts_from_events(bad)


def test_user_in_two_variants() -> None:
    bad = pd.concat([EVENTS, pd.DataFrame([("u1", "B", "impression")], columns=EVENTS.columns)])
    with pytest.raises(AbTestInputError, match="appear in more than one variant"):
        counts_from_events(bad)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clicks": [3, 0, 0, 2, 1, 0]}, "user u1 in variant A has 3 clicks but only 2"),
        ({"impressions": [2, -1, 1, 3, 1, 0]}, "negative counts for user"),
        ({"clicks": [1.5, 0, 0, 2, 1, 0]}, "clicks must be whole numbers"),
        ({"impressions": ["two", 1, 1, 3, 1, 0]}, "impressions must be whole numbers"),
        ({"user": ["u1", "u1", "u3", "u4", "u5", "u6"]}, "more than one row"),
        ({"variant": ["A", None, "A", "B", "B", "B"]}, "empty variant values"),
    ],
)
def test_user_table_validation(change: dict[str, list], message: str) -> None:
    with pytest.raises(AbTestInputError, match=message):
        counts_from_user_table(TABLE.assign(**change))


def test_bad_unit() -> None:
    with pytest.raises(AbTestInputError, match="unit must be one of user, impression"):
        counts_from_events(EVENTS, unit="session")  # type: ignore[arg-type]
