"""Per-user tables from tables, events and CSV files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backend.abtest.errors import AbTestInputError
from backend.abtest.users import counts_from_users, users_from_csv, users_from_events


def test_events_count_every_type(tmp_path: Path) -> None:
    rows = [
        ("u1", "A", "impression"),
        ("u1", "A", "click"),
        ("u1", "A", "purchase"),
        ("u2", "B", "impression"),
        ("u2", "B", "view"),
        ("u2", "B", "rating"),
    ]
    events = pd.DataFrame(rows, columns=["user", "variant", "type"])
    users = users_from_events(events).set_index("user")
    assert users.loc["u1", ["impressions", "clicks", "purchases"]].tolist() == [1, 1, 1]
    assert users.loc["u2", ["impressions", "views", "clicks"]].tolist() == [1, 1, 0]
    path = tmp_path / "e.csv"
    events.to_csv(path, index=False)
    assert users_from_csv(path).set_index("user")["purchases"].to_dict() == {"u1": 1, "u2": 0}


def test_table_with_optional_and_pre_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "user,variant,impressions,clicks,purchases,value,pre_clicks,pre_impressions\n"
        "u1,A,3,1,0,0,1,2\nu2,A,2,0,1,-4.5,0,3\nu3,B,0,0,0,12.25,0,0\n"
    )
    users = users_from_csv(path)
    assert users["value"].tolist() == [0.0, -4.5, 12.25]
    assert users["pre_impressions"].tolist() == [2, 3, 0]
    counts = counts_from_users(users)
    assert [(c.variant, c.units, c.impressions, c.clicks) for c in counts] == [
        ("A", 2, 2, 1),
        ("B", 1, 0, 0),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("user,variant,impressions,clicks,purchases\nu1,A,1,0,-1\n", "purchases cannot be"),
        ("user,variant,impressions,clicks,value\nu1,A,1,0,x\n", "value must be finite"),
        ("user,variant,impressions,clicks\nu1,A,1,2\n", "more clicks than impressions"),
        ("user,variant,impressions,clicks\nu1,A,1,0\nu1,A,2,0\n", "more than one row"),
        ("user,variant,score\nu1,A,1\n", "not the ones needed"),
    ],
)
def test_bad_tables(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(AbTestInputError, match=message):
        users_from_csv(path)
