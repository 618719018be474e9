"""Reading counts from event rows, per-user tables and CSV files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backend.abtest.counts import VariantCounts
from backend.abtest.errors import AbTestInputError
from backend.abtest.inputs import (
    counts_from_csv,
    counts_from_events,
    counts_from_user_table,
    csv_variants,
)

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
    # Rows, not values: an error never quotes the file's contents.
    with pytest.raises(AbTestInputError, match=r"1 unknown event type\(s\) \(row 13\)") as info:
        counts_from_events(bad)
    assert "purchase" not in str(info.value)


def test_events_with_click_but_no_impression() -> None:
    bad = pd.concat([EVENTS, pd.DataFrame([("u9", "B", "click")], columns=EVENTS.columns)])
    with pytest.raises(
        AbTestInputError, match=r"1 user\(s\) have more clicks than impressions.*first row 13"
    ) as info:
        counts_from_events(bad)
    assert "u9" not in str(info.value)


def test_user_in_two_variants() -> None:
    bad = pd.concat([EVENTS, pd.DataFrame([("u1", "B", "impression")], columns=EVENTS.columns)])
    with pytest.raises(AbTestInputError, match="appear in more than one variant"):
        counts_from_events(bad)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clicks": [3, 0, 0, 2, 1, 0]}, r"1 user\(s\) have more clicks.*first row 1\)"),
        ({"impressions": [2, -1, 1, 3, 1, 0]}, r"negative counts for 1 user\(s\) \(row 2\)"),
        ({"clicks": [1.5, 0, 0, 2, 1, 0]}, r"clicks must be whole numbers \(not at row 1\)"),
        ({"impressions": ["two", 1, 1, 3, 1, 0]}, "impressions must be whole numbers"),
        ({"user": ["u1", "u1", "u3", "u4", "u5", "u6"]}, r"more than one row \(again at row 2\)"),
        ({"variant": ["A", None, "A", "B", "B", "B"]}, r"empty variant values \(row 2\)"),
    ],
)
def test_user_table_validation(change: dict[str, list], message: str) -> None:
    with pytest.raises(AbTestInputError, match=message):
        counts_from_user_table(TABLE.assign(**change))


def test_bad_unit() -> None:
    with pytest.raises(AbTestInputError, match="unit must be one of user, impression"):
        counts_from_events(EVENTS, unit="session")  # type: ignore[arg-type]


def test_csv_errors_never_quote_the_file_or_its_location(tmp_path: Path) -> None:
    secret = "s3cr3t-token-6d1f"
    cases = {
        "columns.csv": f"user,variant,{secret}\nu1,A,1\n",
        "values.csv": f"user,variant,impressions,clicks\n{secret},A,1,5\nu2,B,1,0\n",
        "types.csv": f"user,variant,type\nu1,A,{secret}\n",
        "binary.csv": None,
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is None:
            path.write_bytes(b"user,variant,type\n\xff\xfe" + secret.encode() + b"\n")
        else:
            path.write_text(content)
        with pytest.raises(AbTestInputError) as info:
            counts_from_csv(path)
        message = str(info.value)
        assert secret not in message and str(tmp_path) not in message, message


def test_csv_variants_reads_the_variant_column(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text("user, variant,type\nu1, A,click\nu2, B,impression\nu3,,click\n")
    assert csv_variants(path) == {"A", "B"}
    (tmp_path / "none.csv").write_text("user,type\nu1,click\n")
    assert csv_variants(tmp_path / "none.csv") is None
