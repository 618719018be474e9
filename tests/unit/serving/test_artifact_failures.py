"""An artifact that cannot be loaded is a 409 or 503 that says what to do, never a 500.

Models are trained in-process on the embedded stack, then their files are damaged the ways a
disk or an operator damages them: a corrupt .npz, a manifest that no longer matches, a missing
directory. No answer may name a server path.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.config import Settings
from backend.db.session import session_scope
from backend.registry import repository as repo
from tests.unit.api.schemathesis_support import train_active_model as train

DAMAGES = ["corrupt_npz", "manifest_mismatch", "missing_dir"]


def damage(settings: Settings, version: str, how: str) -> None:
    artifact = settings.models_dir / version
    if how == "corrupt_npz":
        (artifact / "factors.npz").write_bytes(b"PK\x03\x04 not a zip archive")
    elif how == "manifest_mismatch":
        with (artifact / "ids.npz").open("ab") as f:
            f.write(b"\x00")
    else:
        shutil.rmtree(artifact)


def assert_clean(r: httpx.Response, settings: Settings) -> None:
    """No server path in the answer: neither the data dir nor any absolute path under it."""
    assert str(settings.data_dir.resolve()) not in r.text
    assert str(settings.models_dir) not in r.text


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize("how", DAMAGES)
def test_an_active_model_that_cannot_load_is_503_and_not_ready(
    settings: Settings, how: str
) -> None:
    train(settings, "v1")
    damage(settings, "v1", how)
    with TestClient(create_app(settings)) as client:  # a process starting on the damaged model
        r = client.get("/api/v1/users/u1/recommendations")
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert "model version v1 cannot be loaded" in error
        assert "activate another version" in error and "retrain" in error
        assert r.json()["detail"]["version"] == "v1"
        assert_clean(r, settings)
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        model = ready.json()["checks"]["model"]
        assert model["ok"] is False and model["version"] == "v1"
        assert "cannot be loaded" in model["error"]
        assert_clean(ready, settings)


def test_ready_with_a_loaded_model_names_its_version(settings: Settings) -> None:
    train(settings, "v1")
    with TestClient(create_app(settings)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        model = ready.json()["checks"]["model"]
        assert model["ok"] is True and model["version"] == "v1"


def test_a_fresh_install_without_a_model_is_ready(client: TestClient) -> None:
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["model"]["ok"] is True


@pytest.mark.parametrize("how", DAMAGES)
def test_comparing_with_a_version_that_cannot_load_is_409(
    settings: Settings, client: TestClient, how: str
) -> None:
    train(settings, "v1")
    train(settings, "v2")
    damage(settings, "v1", how)  # v2 is active and loads; v1 is only compared
    client.app.state.models.refresh()  # type: ignore[attr-defined]
    r = client.post("/api/v1/scenarios/compare", json={"user": "u1", "versions": ["v2", "v1"]})
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert "model version v1 cannot be loaded" in error and "retrain" in error
    assert_clean(r, settings)
    # The active model still serves.
    assert client.get("/api/v1/users/u1/recommendations").status_code == 200


@pytest.mark.parametrize("how", DAMAGES)
def test_activating_a_version_that_cannot_load_is_409_without_a_path(
    settings: Settings, client: TestClient, how: str
) -> None:
    train(settings, "v1")
    train(settings, "v2")
    damage(settings, "v1", how)
    with session_scope(settings.sqlalchemy_url) as s:
        v1 = repo.by_version(s, "v1")
        assert v1 is not None
        v1_id = v1.id
    r = client.post(f"/api/v1/models/{v1_id}/activate")
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert "cannot serve traffic" in error and "model version v1 cannot be loaded" in error
    assert "activate another version or retrain" in error
    assert_clean(r, settings)
    with session_scope(settings.sqlalchemy_url) as s:
        active = repo.active(s)
        assert active is not None and active.version == "v2"


def test_a_model_activated_elsewhere_that_cannot_load_keeps_the_old_one_serving(
    settings: Settings, client: TestClient
) -> None:
    """Another process activates v2 and its files then break: this one keeps serving v1 and
    reports v2 as not loadable."""
    train(settings, "v1")
    client.app.state.models.refresh()  # type: ignore[attr-defined]
    train(settings, "v2")
    damage(settings, "v2", "corrupt_npz")
    assert client.app.state.models.refresh() is False  # type: ignore[attr-defined]
    r = client.get("/api/v1/users/u1/recommendations")
    assert r.status_code == 200 and r.json()["model_version"] == "v1"
    ready = client.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["checks"]["model"]["version"] == "v2"
