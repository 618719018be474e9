"""What the registry shows about a model never holds the server's absolute path."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.api.app import create_app
from backend.config import Settings
from backend.db.session import session_scope
from backend.errors import ConflictError
from backend.jobs import service as jobs
from backend.registry import repository as repo
from backend.registry import service
from backend.registry.service import Activation


def add_model(settings: Settings, version: str) -> int:
    artifact = (settings.models_dir / version).resolve()
    with session_scope(settings.sqlalchemy_url) as s:
        row = repo.add(s, version=version, algorithm="svd", path=str(artifact), fingerprint="f" * 8)
        return row.id


def test_models_show_the_artifact_relative_to_the_models_dir(settings: Settings) -> None:
    model_id = add_model(settings, "svd-v1")
    root = str(settings.data_dir.resolve())
    with TestClient(create_app(settings)) as c:
        listed = c.get("/api/v1/models")
        one = c.get(f"/api/v1/models/{model_id}")
    assert listed.json()["items"][0]["path"] == "svd-v1"
    assert one.json()["path"] == "svd-v1"
    assert root not in listed.text and root not in one.text


def test_a_model_that_cannot_load_is_a_conflict_without_the_server_path(
    settings: Settings,
) -> None:
    model_id = add_model(settings, "svd-missing")
    root = str(settings.data_dir.resolve())
    with session_scope(settings.sqlalchemy_url) as s, pytest.raises(ConflictError) as caught:
        service.activate(s, model_id)
    assert "svd-missing" in caught.value.message
    assert root not in caught.value.message
    with TestClient(create_app(settings)) as c:
        r = c.post(f"/api/v1/models/{model_id}/activate")
    assert r.status_code == 409 and root not in r.text


def test_registering_with_activation_checks_the_artifact_first(settings: Settings) -> None:
    """A version whose artifact does not load is never made active, even with activate=always."""
    missing = str((settings.models_dir / "svd-gone").resolve())

    def register(s: Session, activation: Activation) -> service.Registered:
        job, _ = jobs.create(s, "echo", {}, None)
        return service.register(
            s,
            version="svd-gone",
            algorithm="svd",
            params={},
            path=missing,
            fingerprint="f" * 8,
            metrics={"cv_rmse": 0.9},
            n_users=1,
            n_items=1,
            n_ratings=1,
            job_id=job.id,
            metric_rows=[],
            activation=activation,
        )

    with session_scope(settings.sqlalchemy_url) as s:
        with pytest.raises(ConflictError, match="cannot serve traffic"):
            register(s, "always")
        s.rollback()
        kept = register(s, "never")
        assert kept.activated is False and kept.reason == "activate=never"
        assert repo.active(s) is None


def test_model_answers_keep_their_shape(settings: Settings) -> None:
    model_id = add_model(settings, "svd-v2")
    with TestClient(create_app(settings)) as c:
        one = c.get(f"/api/v1/models/{model_id}").json()
    assert set(one) == {
        "id", "version", "algorithm", "params", "metrics", "fingerprint", "n_users", "n_items",
        "n_ratings", "job_id", "active", "created_at", "activated_at", "path",
    }  # fmt: skip
    assert one["params"] == {} and one["active"] is False and one["activated_at"] is None
