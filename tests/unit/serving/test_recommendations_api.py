"""Train, register, activate and serve on the embedded stack (jobs run in-process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.config import Settings
from backend.db.session import session_scope
from backend.jobs import runner, service
from backend.registry import repository as repo

SYNTH = {"format": "synthetic", "n_users": 300, "n_items": 200, "n_ratings": 12_000, "seed": 3}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def run_job(settings: Settings, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    with session_scope(settings.sqlalchemy_url) as s:
        job_id = service.create(s, kind, params, None, settings=settings)[0].id
    runner.execute(settings, job_id)
    with session_scope(settings.sqlalchemy_url) as s:
        return service.get_or_404(s, job_id).__dict__ | {"stages": None}


def train(settings: Settings, **extra: Any) -> dict[str, Any]:
    params = {"data": SYNTH, "model": {"params": {"n_epochs": 5, "random_state": 1}}, **extra}
    return run_job(settings, "train", params)


def test_no_active_model_is_503_with_what_to_do(client: TestClient) -> None:
    r = client.get("/api/v1/users/1/recommendations")
    assert r.status_code == 503
    assert "train one" in r.json()["error"] and "activate" in r.json()["error"]


def test_train_registers_activates_and_serves(settings: Settings, client: TestClient) -> None:
    job = train(settings, version="v1", validate_k=2, activate="always")
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["activated"] is True and job["result"]["metrics"]["cv_rmse"] > 0
    assert (settings.models_dir / "v1" / "factors.npz").is_file()
    assert job["result"]["path"] == "models/v1"  # relative to the data dir, never absolute
    client.app.state.models.refresh()  # type: ignore[attr-defined]
    r = client.get("/api/v1/users/u1/recommendations", params={"n": 7})
    body = r.json()
    assert r.status_code == 200 and body["model_version"] == "v1"
    assert body["strategy"] == "personalized" and len(body["items"]) == 7
    assert [i["rank"] for i in body["items"]] == list(range(1, 8))
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    history = {i["item"] for i in client.get("/api/v1/users/u1/history").json()["items"]}
    assert history and not history & {i["item"] for i in body["items"]}
    excluded = [body["items"][0]["item"], body["items"][1]["item"]]
    again = client.get("/api/v1/users/u1/recommendations", params={"n": 7, "exclude": excluded})
    kept = [i["item"] for i in again.json()["items"]]
    assert len(kept) == 7 and not set(excluded) & set(kept)
    metrics = client.get("/api/v1/metrics/records", params={"job_id": job["id"]}).json()["items"]
    assert {(m["fold"], m["name"]) for m in metrics} >= {(0, "rmse"), (1, "rmse"), (None, "rmse")}


def test_cold_start_unknown_item_and_bad_input(settings: Settings, client: TestClient) -> None:
    train(settings, version="v1", activate="always")
    client.app.state.models.refresh()  # type: ignore[attr-defined]
    cold = client.get("/api/v1/users/brand-new/recommendations", params={"n": 5}).json()
    assert cold["strategy"] == "popular" and len(cold["items"]) == 5
    assert client.get("/api/v1/items/nope/similar").status_code == 404
    sim = client.get("/api/v1/items/i0/similar", params={"n": 4}).json()["items"]
    assert len(sim) == 4 and "i0" not in {i["item"] for i in sim}
    assert all(-1.0 <= i["score"] <= 1.0 for i in sim)
    for bad_user in ("x" * 65, "a%20b"):
        r = client.get(f"/api/v1/users/{bad_user}/recommendations")
        assert r.status_code == 422 and "user_id" in r.json()["error"]
    for n in (0, 1001):
        r = client.get("/api/v1/users/u1/recommendations", params={"n": n})
        assert r.status_code == 422 and "n" in r.json()["error"]
    r = client.get("/api/v1/users/u1/recommendations", params={"category": "Comedy"})
    assert r.status_code == 422 and "no item metadata" in r.json()["error"]
    r = client.post("/api/v1/users/u1/what-if", json={"ratings": {"i0": 9}})
    assert r.status_code == 422 and "must lie in [1, 5]" in r.json()["error"]
    r = client.post("/api/v1/users/u1/what-if", json={"ratings": {"nope": 4}})
    assert r.status_code == 422 and "nope" in r.json()["error"]


def test_what_if_batch_and_compare(settings: Settings, client: TestClient) -> None:
    train(settings, version="v1", activate="always")
    train(settings, version="v2", activate="never", model={"params": {"n_epochs": 2}})
    client.app.state.models.refresh()  # type: ignore[attr-defined]
    what_if = {"ratings": {"i1": 5, "i2": 1}, "n": 5}
    r = client.post("/api/v1/users/someone-new/what-if", json=what_if)
    body = r.json()
    assert r.status_code == 200 and body["strategy"] == "fold-in" and not body["existing_user"]
    assert len(body["items"]) == 5 and not {"i1", "i2"} & {i["item"] for i in body["items"]}
    batch = client.post("/api/v1/recommendations/batch", json={"users": ["u1", "u2", "zz"], "n": 3})
    results = batch.json()["results"]
    assert [x["strategy"] for x in results] == ["personalized", "personalized", "popular"]
    cmp = client.post("/api/v1/scenarios/compare", json={"user": "u1", "versions": ["v1", "v2"]})
    lists = cmp.json()["lists"]
    assert [x["name"] for x in lists] == ["v1", "v2"]
    overlap = cmp.json()["overlaps"][0]
    common = len(set(lists[0]["items"]) & set(lists[1]["items"]))
    assert overlap["common"] == common


def test_gate_keeps_the_better_model_and_activation_checks_the_artifact(
    settings: Settings, client: TestClient
) -> None:
    good = train(settings, version="good", validate_k=2)
    assert good["result"]["activated"] is True
    bad = train(
        settings, version="bad", validate_k=2, model={"params": {"n_epochs": 1, "lr_all": 0.0001}}
    )
    assert bad["result"]["activated"] is False
    assert "kept the active model" in bad["result"]["activation_reason"]
    with session_scope(settings.sqlalchemy_url) as s:
        active = repo.active(s)
        assert active is not None and active.version == "good"
        bad_id = repo.by_version(s, "bad").id  # type: ignore[union-attr]
    (settings.models_dir / "bad" / "factors.npz").write_bytes(b"garbage")
    r = client.post(f"/api/v1/models/{bad_id}/activate")
    assert r.status_code == 409 and "cannot serve traffic" in r.json()["error"]
    assert client.post("/api/v1/models/9999/activate").status_code == 404
    listed = client.get("/api/v1/models").json()["items"]
    assert [m["version"] for m in listed if m["active"]] == ["good"]


def test_bad_data_fails_the_job_and_activates_nothing(settings: Settings) -> None:
    csv = settings.data_dir / "r.csv"  # inside the allowed roots: the file is read, and fails
    csv.write_text("user,item,rating,timestamp\nu1,i1,4,1\nu2,i1,9,2\nu3,i2,3,3\n")
    job = run_job(settings, "train", {"data": {"format": "csv", "path": str(csv)}})
    assert job["state"] == "failed" and "outside" in job["error"] and "scale" in job["error"]
    with session_scope(settings.sqlalchemy_url) as s:
        assert repo.active(s) is None and not repo.page(s, 10)
    assert not any(settings.models_dir.iterdir())


def test_job_results_name_files_relative_to_the_data_dir(settings: Settings) -> None:
    trained = train(settings, version="rel", activate="always")
    assert trained["result"]["path"] == "models/rel"
    job = run_job(settings, "simulate", {"mode": "precompute", "version": "rel", "n": 3})
    assert job["state"] == "succeeded", job["error"]
    parquet = job["result"]["parquet"]
    assert not Path(parquet).is_absolute() and (settings.data_dir / parquet).exists()
    root = str(settings.data_dir.resolve())
    assert root not in str(trained["result"]) and root not in str(job["result"])


def test_compare_names_what_it_cannot_find(settings: Settings, client: TestClient) -> None:
    train(settings, version="v1", activate="always")
    train(settings, version="v2", activate="never", model={"params": {"n_epochs": 2}})
    r = client.post("/api/v1/scenarios/compare", json={"user": "nobody", "versions": ["v1", "v2"]})
    assert r.status_code == 404 and "'nobody' is in none of the models" in r.json()["error"]
    r = client.post("/api/v1/scenarios/compare", json={"user": "u1", "versions": ["v1", "v9"]})
    assert r.status_code == 404 and "'v9' not found" in r.json()["error"]


def test_item_metadata_outside_the_manifest_is_not_served(
    settings: Settings, client: TestClient
) -> None:
    train(settings, version="v1", activate="always")
    forged = [{"item": f"i{k}", "title": "Forged", "genres": ["Comedy"]} for k in range(200)]
    (settings.models_dir / "v1" / "items.json").write_text(json.dumps(forged))
    client.app.state.models.refresh()  # type: ignore[attr-defined]
    r = client.get("/api/v1/users/u1/recommendations")
    assert r.status_code == 200 and {i["title"] for i in r.json()["items"]} == {None}
    r = client.get("/api/v1/users/u1/recommendations", params={"category": "Comedy"})
    assert r.status_code == 422 and "no item metadata" in r.json()["error"]
