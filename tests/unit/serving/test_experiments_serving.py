"""Serving takes part in the running experiment: each user gets the variant ``assign_variant``
gives (the hash the simulator shares), served by the variant's model version or strategy, and
every answer names its experiment, variant, model version and recommendation id. Impressions of
what was served land in the landing directory, one contract event per item shown."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend.api.app import create_app
from backend.config import Settings
from backend.db.session import get_engine
from backend.serving.state import ModelHolder
from backend.streaming.assignment import assign_variant
from backend.streaming.events import Event
from backend.streaming.validation import validate_event
from tests.unit.serving.test_recommendations_api import train

USERS = [f"u{i}" for i in range(120)] + [f"new{i}" for i in range(30)]
SPLIT = {"v2": 30.0, "pop": 70.0}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    train(settings, version="v1", activate="always")
    train(settings, version="v2", activate="never", model={"params": {"n_epochs": 2}})
    with TestClient(create_app(settings)) as c:
        yield c


def variant_of(user: str) -> str:
    return assign_variant("home", user, list(SPLIT), list(SPLIT.values()))


def refresh(client: TestClient) -> None:
    client.app.state.models.refresh()  # type: ignore[attr-defined]


def start(client: TestClient) -> None:
    r = client.post(
        "/api/v1/experiments",
        json={
            "name": "home",
            "variants": [
                {"name": "v2", "weight": SPLIT["v2"], "model_version": "v2"},
                {"name": "pop", "weight": SPLIT["pop"], "strategy": "popular"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    assert client.post("/api/v1/experiments/home/start").status_code == 200
    refresh(client)


def test_outside_any_experiment_the_active_model_answers(client: TestClient) -> None:
    answers = [client.get(f"/api/v1/users/{u}/recommendations").json() for u in USERS[:5]]
    for a in answers:
        assert a["model_version"] == "v1" and a["experiment"] is None and a["variant"] is None
        assert len(a["recommendation_id"]) == 32
    assert len({a["recommendation_id"] for a in answers}) == 5


def test_users_get_their_assigned_variant(client: TestClient) -> None:
    popular = client.get("/api/v1/users/nobody/recommendations", params={"n": 5}).json()["items"]
    start(client)
    seen: Counter[str] = Counter()
    ids = set()
    for user in USERS:
        a = client.get(f"/api/v1/users/{user}/recommendations", params={"n": 5}).json()
        expected = variant_of(user)
        assert (a["experiment"], a["variant"]) == ("home", expected), user
        seen[expected] += 1
        ids.add(a["recommendation_id"])
        if expected == "v2":
            assert a["model_version"] == "v2"
            assert a["strategy"] == ("personalized" if user.startswith("u") else "popular")
        else:  # the popular strategy: the active model's popularity list, for known users too
            assert a["model_version"] == "v1" and a["strategy"] == "popular"
            assert a["items"] == popular
    assert set(seen) == {"v2", "pop"} and seen["pop"] > seen["v2"]
    assert len(ids) == len(USERS)
    batch = client.post("/api/v1/recommendations/batch", json={"users": USERS[:40], "n": 3})
    results = batch.json()["results"]
    assert batch.json()["model_version"] == "v1"
    for user, a in zip(USERS[:40], results, strict=True):
        assert a["variant"] == variant_of(user)
        assert a["model_version"] == ("v2" if a["variant"] == "v2" else "v1")
    assert len({a["recommendation_id"] for a in results}) == 40
    # Stopped: everyone is back on the active model.
    assert client.post("/api/v1/experiments/home/stop").status_code == 200
    refresh(client)
    after = client.get("/api/v1/users/u1/recommendations").json()
    assert after["experiment"] is None and after["model_version"] == "v1"


def test_a_variant_serves_no_hidden_item(client: TestClient) -> None:
    start(client)
    user = next(
        u for u in USERS if assign_variant("home", u, list(SPLIT), list(SPLIT.values())) == "v2"
    )
    first = client.get(f"/api/v1/users/{user}/recommendations", params={"n": 5}).json()
    assert first["model_version"] == "v2"
    top = first["items"][0]["item"]
    assert client.put(f"/api/v1/items/{top}", json={"hidden": True}).status_code == 201
    refresh(client)
    again = client.get(f"/api/v1/users/{user}/recommendations", params={"n": 5}).json()
    assert again["model_version"] == "v2" and top not in {i["item"] for i in again["items"]}
    assert [i["item"] for i in again["items"]][:4] == [i["item"] for i in first["items"]][1:5]


def test_impressions_of_what_was_served_land_as_contract_events(settings: Settings) -> None:
    train(settings, version="v1", activate="always")
    train(settings, version="v2", activate="never", model={"params": {"n_epochs": 2}})
    with TestClient(create_app(settings)) as client:
        start(client)
        answers = [
            client.get(f"/api/v1/users/{u}/recommendations", params={"n": 4}).json()
            for u in USERS[:10]
        ]
        batch = client.post("/api/v1/recommendations/batch", json={"users": ["u50"], "n": 2})
        answers += batch.json()["results"]
        metrics = client.get("/metrics").text
    assert "recflow_impressions_dropped_total" in metrics
    # The app is shut down: the buffer was flushed to the landing directory.
    lines = [
        line
        for f in sorted(settings.landing_dir.glob("impressions-*.jsonl"))
        for line in f.read_bytes().splitlines()
    ]
    events = []
    for line in lines:
        valid = validate_event(line)
        assert isinstance(valid, Event), valid
        events.append(valid)
    assert len(events) == 10 * 4 + 2 and len({e.event_id for e in events}) == len(events)
    shown = {(a["recommendation_id"], i["item"]): a for a in answers for i in a["items"]}
    for e in events:
        a = shown[(e.recommendation_id, e.item)]
        assert e.type == "impression" and e.source == "serving" and e.user == a["user"]
        assert (e.experiment, e.variant, e.model_version) == (
            "home",
            a["variant"],
            a["model_version"],
        )
    assert orjson.loads(lines[0])["schema_version"] == 1


def test_a_fault_reading_experiments_or_items_never_stops_the_active_model(
    settings: Settings,
) -> None:
    train(settings, version="v1", activate="always")
    with get_engine(settings.sqlalchemy_url).begin() as conn:
        conn.execute(text("DROP TABLE items"))  # e.g. a database not migrated yet
    holder = ModelHolder(settings.sqlalchemy_url, 60)
    holder.refresh()
    assert holder.current is not None and holder.current.version == "v1"
    assert holder.experiment is None
    assert holder.read_error is not None and "no such table: items" in holder.read_error
