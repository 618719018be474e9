"""``recflow experiments`` and ``recflow items`` write what serving reads, by the API's rules,
and every mistake is one line with its exit code."""

from __future__ import annotations

import json

from backend.catalogue import service as catalogue
from backend.config import get_settings
from backend.db.session import session_scope
from tests.unit.cli.conftest import Recflow


def status(recflow: Recflow, name: str) -> str:
    res = recflow("experiments", "show", name, "--json")
    assert res.exit_code == 0, res.output
    return str(json.loads(res.stdout)["status"])


def test_an_experiment_goes_from_draft_to_running_to_stopped(recflow: Recflow) -> None:
    res = recflow(
        "experiments", "create", "home", "--variant", "A=30:popular", "--variant", "B=70:popular"
    )
    assert res.exit_code == 0, res.output
    assert "home: draft" in res.stdout and "30.0%" in res.stdout and "70.0%" in res.stdout
    assert status(recflow, "home") == "draft"
    assert recflow("experiments", "start", "home").exit_code == 0
    assert status(recflow, "home") == "running"

    other = (
        "experiments",
        "create",
        "away",
        "--variant",
        "A=1:popular",
        "--variant",
        "B=1:popular",
    )
    assert recflow(*other, "--start").exit_code == 4  # one experiment runs at a time
    assert recflow("experiments", "show", "away").exit_code == 3  # all or nothing
    assert recflow(*other).exit_code == 0
    res = recflow("experiments", "start", "away")
    assert res.exit_code == 4 and "'home' is running" in res.stderr

    res = recflow("experiments", "stop", "home", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["stopped_at"] is not None
    assert recflow("experiments", "start", "home").exit_code == 4  # stopped stays stopped
    assert recflow("experiments", "start", "away").exit_code == 0


def test_experiment_mistakes_are_named_with_their_exit_codes(recflow: Recflow) -> None:
    cases = [
        (("--variant", "A=50:popular", "--variant", "B50popular"), 2, "NAME=WEIGHT:SOURCE"),
        (("--variant", "A=50:popular", "--variant", "B=x:popular"), 2, "not a number"),
        (("--variant", "A=50:popular", "--variant", "B=-1:popular"), 2, "weight"),
        (("--variant", "A=50:popular", "--variant", "B=1:v9-missing"), 2, "not in the registry"),
        (("--variant", "A=50:popular"), 2, "at least 2 variants"),
    ]
    for args, code, words in cases:
        res = recflow("experiments", "create", "home", *args)
        assert (res.exit_code, res.stderr.count("\n")) == (code, 1), (args, res.output)
        assert res.stderr.startswith("error: ") and words in res.stderr, res.stderr
    assert recflow("experiments", "show", "nope").exit_code == 3
    assert recflow("experiments", "stop", "nope").exit_code == 3


def test_items_are_created_changed_hidden_and_listed(recflow: Recflow) -> None:
    res = recflow("items", "put", "i1", "--title", "Toy Story", "--category", "Animation")
    assert res.exit_code == 0 and "i1 created" in res.stdout
    assert recflow("items", "put", "i2", "--category", "Drama").exit_code == 0
    res = recflow("items", "update", "i1", "--hidden", "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout) | {"updated_at": None} == {
        "item": "i1",
        "title": "Toy Story",
        "categories": ["Animation"],
        "hidden": True,
        "updated_at": None,
    }
    with session_scope(get_settings().sqlalchemy_url) as s:
        snap = catalogue.snapshot(s, None)
    assert snap is not None and snap.items["i1"].hidden and not snap.items["i2"].hidden

    res = recflow("items", "list", "--category", "Drama", "--json")
    assert [i["item"] for i in json.loads(res.stdout)["items"]] == ["i2"]
    assert recflow("items", "update", "i1", "--shown").exit_code == 0
    assert json.loads(recflow("items", "show", "i1", "--json").stdout)["hidden"] is False


def test_item_mistakes_are_named_with_their_exit_codes(recflow: Recflow) -> None:
    res = recflow("items", "put", "bad id")
    assert res.exit_code == 2 and "[A-Za-z0-9_-]" in res.stderr
    res = recflow("items", "put", "i1", "--category", "a,b")
    assert res.exit_code == 2 and "categories" in res.stderr
    res = recflow("items", "update", "i1")
    assert res.exit_code == 2 and "nothing to change" in res.stderr
    assert recflow("items", "update", "nope", "--title", "x").exit_code == 3
    assert recflow("items", "show", "nope").exit_code == 3
