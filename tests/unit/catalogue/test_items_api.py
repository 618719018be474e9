"""The items catalogue through the API (create or replace, change, read, list by category), and
serving under it: catalogue titles and categories win, and a hidden item is never served."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.config import Settings
from tests.unit.serving.test_recommendations_api import train


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def test_put_patch_get_and_list(client: TestClient) -> None:
    r = client.put("/api/v1/items/i1", json={"title": "Heat", "categories": ["Crime", "Crime"]})
    assert r.status_code == 201
    created = r.json()
    assert created["item"] == "i1" and created["categories"] == ["Crime"]
    assert created["hidden"] is False
    # PUT replaces every field: what is not given takes its default.
    replaced = client.put("/api/v1/items/i1", json={"categories": ["Drama"], "hidden": True})
    assert replaced.status_code == 200
    assert replaced.json()["title"] is None and replaced.json()["hidden"] is True
    assert replaced.json()["updated_at"] >= created["updated_at"]
    patched = client.patch("/api/v1/items/i1", json={"title": "Heat (1995)"}).json()
    assert patched["title"] == "Heat (1995)" and patched["categories"] == ["Drama"]
    assert patched["hidden"] is True
    assert client.patch("/api/v1/items/i1", json={"title": None}).json()["title"] is None
    assert client.get("/api/v1/items/i1").json()["hidden"] is True
    r = client.patch("/api/v1/items/i404", json={"hidden": True})
    assert r.status_code == 404 and "PUT /api/v1/items/i404 creates it" in r.json()["error"]
    assert client.get("/api/v1/items/i404").status_code == 404
    for bad in ({"hidden": "maybe"}, {"categories": ["a,b"]}, {"colour": "red"}):
        assert client.put("/api/v1/items/i2", json=bad).status_code == 422, bad
    assert client.put("/api/v1/items/bad%20id", json={}).status_code == 422
    for i in range(2, 8):
        cats = ["Drama"] if i % 2 else ["Comedy"]
        assert client.put(f"/api/v1/items/i{i}", json={"categories": cats}).is_success
    page = client.get("/api/v1/items", params={"limit": 3}).json()
    assert [x["item"] for x in page["items"]] == ["i1", "i2", "i3"] and page["next_after"] == "i3"
    rest = client.get("/api/v1/items", params={"limit": 3, "after": "i3"}).json()
    assert [x["item"] for x in rest["items"]] == ["i4", "i5", "i6"]
    drama = client.get("/api/v1/items", params={"category": "Drama", "limit": 2}).json()
    assert [x["item"] for x in drama["items"]] == ["i1", "i3"] and drama["next_after"] == "i3"
    more = client.get("/api/v1/items", params={"category": "Drama", "after": "i3"}).json()
    assert [x["item"] for x in more["items"]] == ["i5", "i7"] and more["next_after"] is None


def test_serving_never_shows_a_hidden_item_and_uses_catalogue_metadata(
    settings: Settings, client: TestClient
) -> None:
    train(settings, version="v1", activate="always")  # trained without item metadata
    holder = client.app.state.models  # type: ignore[attr-defined]
    holder.refresh()
    mine = client.get("/api/v1/users/u1/recommendations", params={"n": 5}).json()["items"]
    cold = client.get("/api/v1/users/nobody/recommendations", params={"n": 5}).json()["items"]
    top, top_cold = mine[0]["item"], cold[0]["item"]
    similar = client.get(f"/api/v1/items/{mine[1]['item']}/similar", params={"n": 5}).json()
    hide = {top, top_cold, similar["items"][0]["item"]}
    for item in hide:
        assert client.put(f"/api/v1/items/{item}", json={"hidden": True}).is_success
    second = mine[1]["item"]
    client.put(f"/api/v1/items/{second}", json={"title": "Second", "categories": ["Noir"]})
    holder.refresh()
    after = client.get("/api/v1/users/u1/recommendations", params={"n": 5}).json()["items"]
    after_cold = client.get("/api/v1/users/nobody/recommendations", params={"n": 5}).json()
    assert len(after) == 5 and not hide & {i["item"] for i in after}
    assert len(after_cold["items"]) == 5 and not hide & {i["item"] for i in after_cold["items"]}
    sim = client.get(f"/api/v1/items/{second}/similar", params={"n": 5}).json()["items"]
    assert len(sim) == 5 and not hide & {i["item"] for i in sim}
    batch = client.post("/api/v1/recommendations/batch", json={"users": ["u1", "zz"], "n": 5})
    assert not hide & {i["item"] for a in batch.json()["results"] for i in a["items"]}
    what_if = client.post("/api/v1/users/u1/what-if", json={"ratings": {"i3": 5}, "n": 5})
    assert not hide & {i["item"] for i in what_if.json()["items"]}
    # Filtered before the top-N cut: the list is still full and keeps the visible ranking.
    kept = [i["item"] for i in mine if i["item"] not in hide]
    assert [i["item"] for i in after][: len(kept)] == kept
    titled = next(i for i in after if i["item"] == second)
    assert titled["title"] == "Second"
    noir = client.get("/api/v1/users/u1/recommendations", params={"category": "Noir"}).json()
    assert [i["item"] for i in noir["items"]] == [second]
    # Shown again once it is visible.
    client.patch(f"/api/v1/items/{top}", json={"hidden": False})
    holder.refresh()
    back = client.get("/api/v1/users/u1/recommendations", params={"n": 5}).json()["items"]
    assert back[0]["item"] == top
