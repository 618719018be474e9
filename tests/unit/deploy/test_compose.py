"""docker-compose.yml cannot run here (no Docker engine), so its shape is checked instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from backend.config import Settings

REPO = Path(__file__).resolve().parents[3]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return data


def test_has_every_service_with_a_healthcheck() -> None:
    services = _compose()["services"]
    for name in ("postgres", "redis", "kafka", "api", "worker", "flower", "monitor"):
        assert name in services, f"compose lacks the {name} service"
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_app_settings_are_real_settings_and_point_at_the_services() -> None:
    services = _compose()["services"]
    fields = set(Settings.model_fields)
    for name in ("api", "worker", "flower", "monitor"):
        env = services[name]["environment"]
        for key in env:
            if key.startswith("RECFLOW_"):
                assert key.removeprefix("RECFLOW_").lower() in fields, f"{name}: unknown {key}"
        settings = Settings(
            **{
                k.removeprefix("RECFLOW_").lower(): v
                for k, v in env.items()
                if k.startswith("RECFLOW_")
            }
        )
        assert settings.env == "production"
        assert "@postgres:5432/" in settings.sqlalchemy_url
        assert settings.celery_broker_url.startswith("redis://redis:6379")
        assert settings.kafka_bootstrap_servers == "kafka:9092"
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"


def test_migrations_run_before_the_app_and_the_image_builds_from_this_repo() -> None:
    services = _compose()["services"]
    assert services["migrate"]["command"] == ["recflow", "db", "upgrade"]
    assert services["monitor"]["command"] == ["recflow", "monitor"]
    assert services["api"]["build"] == "."
    dockerfile = (REPO / "Dockerfile").read_text()
    for path in ("backend", "workers", "migrations", "alembic.ini"):
        assert path in dockerfile
    pg = services["postgres"]["environment"]
    url = services["api"]["environment"]["RECFLOW_DATABASE_URL"]
    assert f"{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@" in url
    assert url.endswith("/" + pg["POSTGRES_DB"])
