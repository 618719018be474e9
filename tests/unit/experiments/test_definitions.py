"""Experiment definitions through the API: create (validated, 4xx that say what to fix), read,
start, stop, the one-running rule (also held by the database under a race), and the listing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError

from backend.api.app import create_app
from backend.config import Settings
from backend.db.migrate import upgrade
from backend.db.session import session_scope
from backend.experiments import repository
from tests.conftest import service_env
from tests.unit.serving.test_recommendations_api import train


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    train(settings, version="v1", activate="always")
    with TestClient(create_app(settings)) as c:
        yield c


def body(name: str = "home", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": "v1 against the popularity list",
        "variants": [
            {"name": "A", "weight": 50, "model_version": "v1"},
            {"name": "B", "weight": 50, "strategy": "popular"},
        ],
        **extra,
    }


def test_create_read_and_list(client: TestClient) -> None:
    r = client.post("/api/v1/experiments", json=body())
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == "/api/v1/experiments/home"
    created = r.json()
    assert created["status"] == "draft" and created["started_at"] is None
    assert created["variants"] == [
        {"name": "A", "weight": 50.0, "model_version": "v1", "strategy": None},
        {"name": "B", "weight": 50.0, "model_version": None, "strategy": "popular"},
    ]
    assert client.get("/api/v1/experiments/home").json() == created
    [listed] = client.get("/api/v1/experiments").json()["items"]
    # The fields the listing had are kept; the definition is added.
    assert listed["experiment"] == "home" and listed["in_lake"] is False
    assert listed["analyses"] == 0 and listed["latest"] is None
    assert listed["status"] == "draft" and listed["definition"] == created


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"variants": [{"name": "A", "weight": 1, "model_version": "v1"}]}, 422, "at least 2"),
        (
            {"variants": [{"name": "A", "weight": 0, "model_version": "v1"}] * 2},
            422,
            "variants.0.weight",
        ),
        (
            {
                "variants": [
                    {"name": "A", "weight": 1, "model_version": "v1"},
                    {"name": "A", "weight": 1, "strategy": "popular"},
                ]
            },
            422,
            "variant names must be distinct; repeated: ['A']",
        ),
        (
            {
                "variants": [
                    {"name": "A", "weight": 1, "model_version": "v9"},
                    {"name": "B", "weight": 1, "strategy": "popular"},
                ]
            },
            422,
            "model versions not in the registry: ['v9']",
        ),
        (
            {
                "variants": [
                    {"name": "A", "weight": 1, "model_version": "v1", "strategy": "popular"},
                    {"name": "B", "weight": 1, "strategy": "popular"},
                ]
            },
            422,
            "exactly one of model_version",
        ),
        (
            {"variants": [{"name": "A", "weight": 1}, {"name": "B", "weight": 1}]},
            422,
            "exactly one of model_version",
        ),
        ({"name": "has space"}, 422, "name"),
        ({"name": "sample-size"}, 422, "reserved name"),
    ],
)
def test_a_bad_definition_is_refused_with_what_to_fix(
    client: TestClient, change: dict[str, Any], status: int, message: str
) -> None:
    r = client.post("/api/v1/experiments", json=body() | change)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert client.get("/api/v1/experiments").json()["items"] == []


def test_names_are_unique(client: TestClient) -> None:
    assert client.post("/api/v1/experiments", json=body()).status_code == 201
    r = client.post("/api/v1/experiments", json=body())
    assert r.status_code == 409 and "already exists" in r.json()["error"]


def test_lifecycle_and_one_running_experiment(client: TestClient) -> None:
    assert client.post("/api/v1/experiments/nope/start").status_code == 404
    assert client.get("/api/v1/experiments/nope").status_code == 404
    for name in ("home", "other"):
        assert client.post("/api/v1/experiments", json=body(name)).status_code == 201
    r = client.post("/api/v1/experiments/home/stop")
    assert r.status_code == 409 and "only a running one can stop" in r.json()["error"]
    started = client.post("/api/v1/experiments/home/start")
    assert started.status_code == 200 and started.json()["status"] == "running"
    assert started.json()["started_at"] is not None
    r = client.post("/api/v1/experiments/other/start")
    assert r.status_code == 409 and "'home' is running; stop it first" in r.json()["error"]
    assert r.json()["detail"] == {"running": "home"}
    again = client.post("/api/v1/experiments/home/start")
    assert again.status_code == 409 and "only a draft can start" in again.json()["error"]
    stopped = client.post("/api/v1/experiments/home/stop").json()
    assert stopped["status"] == "stopped" and stopped["stopped_at"] >= stopped["started_at"]
    r = client.post("/api/v1/experiments/home/start")
    assert r.status_code == 409 and "define a new one" in r.json()["error"]
    assert client.post("/api/v1/experiments/other/start").json()["status"] == "running"
    statuses = {
        e["experiment"]: e["status"] for e in client.get("/api/v1/experiments").json()["items"]
    }
    assert statuses == {"home": "stopped", "other": "running"}


def _second_running_is_refused(url: str) -> None:
    # Two starts that both passed the service's check: the partial unique index stops the
    # second. One transaction, rolled back on the error: nothing is left behind.
    variants = [{"name": "A", "weight": 1.0, "model_version": None, "strategy": "popular"}]
    names = [f"race-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with (
        pytest.raises(IntegrityError, match=r"uq_experiments_one_running|experiments\.status"),
        session_scope(url) as s,
    ):
        rows = [
            repository.add_definition(s, name=name, description="", variants=variants)
            for name in names
        ]
        for row in rows:
            row.status = "running"
            s.flush()


def test_the_database_refuses_a_second_running_experiment(settings: Settings) -> None:
    _second_running_is_refused(settings.sqlalchemy_url)


def test_postgresql_refuses_a_second_running_experiment() -> None:
    url = service_env("RECFLOW_TEST_DATABASE_URL")
    upgrade(url)
    _second_running_is_refused(url)
