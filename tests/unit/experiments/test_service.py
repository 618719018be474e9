"""Experiment rules: the control variant, and the listing that merges the lake with the stored
analyses (an empty lake lists nothing from it; a lake that cannot be read still lists the
analysed experiments, and the fault is logged)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import Settings
from backend.db.session import session_scope
from backend.experiments import definitions, service
from backend.experiments.schemas import ExperimentIn, VariantIn
from tests.unit.pipeline.lake_builder import event, write_batch

T0 = 1_700_000_000


def store(settings: Settings, experiment: str, verdict: str) -> int:
    with session_scope(settings.sqlalchemy_url) as s:
        return service.store_analysis(
            s,
            experiment=experiment,
            job_id=None,
            source="csv",
            unit="user",
            result={"status": "ok", "verdict": verdict},
            chart_png=None,
        )


@pytest.mark.parametrize(
    ("variants", "asked", "control"),
    [
        (["B", "control", "A"], None, "control"),
        (["B", "A"], None, "A"),
        (["B", "control"], "B", "B"),
    ],
)
def test_the_control_is_the_asked_one_else_control_else_the_first(
    variants: list[str], asked: str | None, control: str
) -> None:
    assert service.choose_control(variants, asked) == control


def test_an_empty_lake_lists_the_analysed_experiments(settings: Settings) -> None:
    store(settings, "home", "A wins")
    last = store(settings, "home", "B wins")
    with session_scope(settings.sqlalchemy_url) as s:
        listed = service.list_experiments(s, settings.lake_dir).items
    [home] = listed
    assert home.experiment == "home" and home.in_lake is False and home.analyses == 2
    assert home.latest is not None and home.latest.id == last and home.latest.verdict == "B wins"


def test_the_lake_and_the_stored_analyses_are_merged(settings: Settings) -> None:
    write_batch(
        settings.lake_dir,
        0,
        [
            event("c1", "u1", "i1", "impression", T0, experiment="home", variant="A"),
            event("c2", "u2", "i1", "impression", T0 + 1, experiment="search", variant="B"),
        ],
    )
    store(settings, "home", "A wins")
    store(settings, "old", "no difference")
    with session_scope(settings.sqlalchemy_url) as s:
        listed = service.list_experiments(s, settings.lake_dir).items
    got = {e.experiment: (e.in_lake, e.analyses, e.latest is not None) for e in listed}
    assert got == {
        "home": (True, 1, True),
        "old": (False, 1, True),
        "search": (True, 0, False),
    }
    assert [e.experiment for e in listed] == ["home", "old", "search"]


def test_a_lake_that_cannot_be_read_lists_the_analysed_and_logs_the_fault(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    write_batch(
        settings.lake_dir,
        0,
        [event("c1", "u1", "i1", "impression", T0, experiment="home", variant="A")],
    )
    store(settings, "old", "no difference")
    [part] = Path(settings.lake_dir).rglob("*.parquet")
    part.write_bytes(b"not parquet at all")
    with session_scope(settings.sqlalchemy_url) as s, caplog.at_level("WARNING"):
        listed = service.list_experiments(s, settings.lake_dir).items
    assert [(e.experiment, e.in_lake) for e in listed] == [("old", False)]
    [record] = [r for r in caplog.records if "lake could not be read" in r.getMessage()]
    assert "ArrowInvalid" in record.getMessage()


def test_a_definition_merges_with_the_analyses_of_its_name(settings: Settings) -> None:
    last = store(settings, "home", "A wins")
    body = ExperimentIn(
        name="home",
        variants=[
            VariantIn(name="A", weight=1, strategy="popular"),
            VariantIn(name="B", weight=3, strategy="popular"),
        ],
    )
    with session_scope(settings.sqlalchemy_url) as s:
        definitions.create(s, body)
        definitions.create(s, body.model_copy(update={"name": "draft-only"}))
    with session_scope(settings.sqlalchemy_url) as s:
        draft, home = service.list_experiments(s, settings.lake_dir).items  # by name
    assert (home.experiment, home.analyses, home.status) == ("home", 1, "draft")
    assert home.latest is not None and home.latest.id == last
    assert home.definition is not None and [v.weight for v in home.definition.variants] == [1, 3]
    assert (draft.experiment, draft.analyses, draft.latest, draft.status) == (
        "draft-only",
        0,
        None,
        "draft",
    )
