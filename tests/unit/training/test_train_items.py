"""``train`` with item metadata: the metadata is part of the artifact, under its manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.config import Settings
from backend.db.session import session_scope
from backend.jobs import runner, service
from backend.recsys.artifacts import ITEMS_FILE, load_artifact
from backend.registry import repository as repo

SYNTH = {"format": "synthetic", "n_users": 120, "n_items": 80, "n_ratings": 3_000, "seed": 3}


def write_release(folder: Path, n_items: int) -> Path:
    """An ml-100k style u.item (+ u.genre): even items are Comedy, odd ones Drama; item i3 has
    no title."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.genre").write_text("Comedy|0\nDrama|1\n", encoding="latin-1")
    lines = []
    for k in range(n_items):
        title = "" if k == 3 else f"Film {k}"
        flags = "1|0" if k % 2 == 0 else "0|1"
        lines.append(f"i{k}|{title}|01-Jan-1995||http://example.org/{k}|{flags}")
    (folder / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    return folder


def train(settings: Settings, version: str, **extra: Any) -> dict[str, Any]:
    params = {
        "data": SYNTH,
        "model": {"params": {"n_epochs": 2, "random_state": 1}},
        "version": version,
        "activate": "always",
        **extra,
    }
    with session_scope(settings.sqlalchemy_url) as s:
        job_id = service.create(s, "train", params, None, settings=settings)[0].id
    runner.execute(settings, job_id)
    with session_scope(settings.sqlalchemy_url) as s:
        job = service.get_or_404(s, job_id)
        assert job.state == "succeeded", job.error
        return dict(job.result or {})


def test_items_are_saved_inside_the_artifact_and_listed_in_its_manifest(
    settings: Settings,
) -> None:
    release = write_release(settings.data_dir / "release", 80)
    train(settings, "v-items", items={"format": "ml-100k", "path": str(release)})
    artifact = settings.models_dir / "v-items"
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert ITEMS_FILE in manifest["files"]
    loaded = load_artifact(artifact)
    assert loaded.items is not None and len(loaded.items) == 80
    by_item = {r["item"]: r for r in loaded.items}
    assert by_item["i0"] == {"item": "i0", "title": "Film 0", "genres": ["Comedy"]}
    assert by_item["i3"]["title"] is None  # a missing title is stored as null, never NaN


def test_served_titles_and_categories_come_from_the_artifact(settings: Settings) -> None:
    release = write_release(settings.data_dir / "release", 80)
    train(settings, "v-items", items={"format": "ml-100k", "path": str(release)})
    with TestClient(create_app(settings)) as client:
        r = client.get("/api/v1/users/u1/recommendations", params={"n": 5, "category": "Comedy"})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert len(items) == 5
        assert all(int(i["item"][1:]) % 2 == 0 for i in items)
        assert all(i["title"] == f"Film {i['item'][1:]}" for i in items)
        r = client.get("/api/v1/users/u1/recommendations", params={"category": "Western"})
        assert r.status_code == 422 and "Western" in r.json()["error"]


def test_edited_item_metadata_keeps_the_version_from_serving(settings: Settings) -> None:
    release = write_release(settings.data_dir / "release", 80)
    train(settings, "v-good")
    train(settings, "v-items", items={"format": "ml-100k", "path": str(release)}, activate="never")
    items_file = settings.models_dir / "v-items" / ITEMS_FILE
    items_file.write_text(items_file.read_text().replace("Film 0", "Edited"))
    with session_scope(settings.sqlalchemy_url) as s:
        row = repo.by_version(s, "v-items")
        assert row is not None
        model_id = row.id
    with TestClient(create_app(settings)) as client:
        r = client.post(f"/api/v1/models/{model_id}/activate")
        assert r.status_code == 409, r.text
        assert ITEMS_FILE in r.json()["error"] and "does not match" in r.json()["error"]
        assert client.get("/api/v1/users/u1/recommendations").json()["model_version"] == "v-good"
