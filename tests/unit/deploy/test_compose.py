"""docker-compose.yml cannot run here (no Docker engine), so its shape is checked instead.

The file is read as compose reads it: every ``${NAME:?message}`` comes from .env, here filled
from .env.example with generated values.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import Path
from typing import Any

import yaml

from backend.cli.app import flower_launch
from backend.config import Settings

REPO = Path(__file__).resolve().parents[3]
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[?-][^}]*)?\}")
READ_KEY = secrets.token_hex(16)


def _raw() -> str:
    return (REPO / "docker-compose.yml").read_text()


def _example() -> dict[str, str]:
    names: dict[str, str] = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not NAME=value"
            names[name.strip()] = value
    return names


def _dotenv() -> dict[str, str]:
    """A filled-in .env: one generated value per variable of .env.example."""
    values = {name: secrets.token_hex(16) for name in _example()}
    values["MONITOR_READ_KEY"] = READ_KEY
    values["API_KEYS"] = (
        f"admin:{secrets.token_hex(16)},write:sha256:{hashlib.sha256(b'w' * 20).hexdigest()},"
        f"read:{READ_KEY}"
    )
    values["FLOWER_BASIC_AUTH"] = f"ops:{secrets.token_hex(12)}"
    return values


def _compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    values = _dotenv() if env is None else env
    text = VARIABLE.sub(lambda m: values[m.group(1)], _raw()).replace("$$", "$")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _settings(env: dict[str, Any]) -> Settings:
    return Settings(
        **{
            k.removeprefix("RECFLOW_").lower(): v
            for k, v in env.items()
            if k.startswith("RECFLOW_")
        }
    )


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
        settings = _settings(env)
        assert settings.env == "production"
        assert "@postgres:5432/" in settings.sqlalchemy_url
        assert re.match(r"redis://:[0-9a-f]+@redis:6379/", settings.celery_broker_url)
        assert settings.kafka_bootstrap_servers == "kafka:9092"
        assert settings.api_key_scopes(), f"{name} starts without API keys"
        assert settings.metrics_public is False
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
    _settings(services["migrate"]["environment"])  # migrate validates the same settings


def test_only_the_api_and_flower_are_published() -> None:
    services = _compose()["services"]
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"api", "flower"}
    for name in ("postgres", "redis", "kafka"):
        assert "ports" not in services[name], f"{name} must stay on the compose network"


def test_no_password_or_key_is_written_in_the_file() -> None:
    raw = yaml.safe_load(_raw())
    assert "FLOWER_UNAUTHENTICATED_API" not in _raw()
    pg = raw["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert VARIABLE.fullmatch(pg), "POSTGRES_PASSWORD must come from the environment"
    secrets_in_env = ("PASSWORD", "_KEY", "_KEYS", "BASIC_AUTH", "SECRET", "REDISCLI_AUTH")
    for name, svc in raw["services"].items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            if any(part in key for part in secrets_in_env):
                assert VARIABLE.fullmatch(str(value)), f"{name}: {key} is written in the file"
            if "_URL" in key and "@" in str(value):
                credentials = str(value).split("://", 1)[1].split("@", 1)[0]
                password = credentials.partition(":")[2]
                assert VARIABLE.fullmatch(password), f"{name}: {key} has a literal password"
    assert raw["services"]["redis"]["command"][:2] == ["redis-server", "--requirepass"]
    assert VARIABLE.fullmatch(raw["services"]["redis"]["command"][2])


def test_every_variable_the_file_needs_is_in_env_example_and_required() -> None:
    needed = {m.group(1) for m in VARIABLE.finditer(_raw())}
    example = _example()
    assert needed <= set(example), f".env.example lacks {sorted(needed - set(example))}"
    assert set(example) <= needed, f".env.example has unused {sorted(set(example) - needed)}"
    # ${NAME:?...}: compose refuses to start while one is unset or empty, and the example ships
    # no value, so no deployment runs on a password from this repository.
    for m in VARIABLE.finditer(_raw()):
        assert ":?" in m.group(0), f"{m.group(0)} has no :? guard"
    assert all(value.strip() == "" for value in example.values())


def test_flower_runs_behind_basic_auth_from_the_environment() -> None:
    services = _compose()["services"]
    flower = services["flower"]
    assert flower["command"][:2] == ["recflow", "flower"]
    assert "0.0.0.0" in flower["command"]
    settings = _settings(flower["environment"])
    assert settings.flower_authenticated
    args, env = flower_launch(settings, port=5555, address="0.0.0.0", basic_auth=None)
    assert env["FLOWER_BASIC_AUTH"].startswith("ops:")
    assert not any(env["FLOWER_BASIC_AUTH"] in a for a in args)
    raw_flower = yaml.safe_load(_raw())["services"]["flower"]["environment"]
    assert VARIABLE.fullmatch(raw_flower["RECFLOW_FLOWER_BASIC_AUTH"])


def test_monitor_healthcheck_sends_a_read_key_that_the_api_accepts() -> None:
    services = _compose()["services"]
    monitor = services["monitor"]
    assert "X-API-Key" in " ".join(monitor["healthcheck"]["test"])
    key = monitor["environment"]["MONITOR_READ_KEY"]
    scopes = _settings(services["api"]["environment"]).api_key_scopes()
    assert scopes[hashlib.sha256(key.encode()).digest()] == "read"


def test_spark_runs_as_a_cluster_sharing_the_lake_with_the_app() -> None:
    services = _compose()["services"]
    master, worker = services["spark-master"], services["spark-worker"]
    assert "healthcheck" in master
    assert "org.apache.spark.deploy.master.Master" in master["command"][-1]
    assert "--port 7077" in master["command"][-1]
    assert "bin/spark-class" in worker["command"][-1]
    assert "deploy.worker.Worker spark://spark-master:7077" in worker["command"][-1]
    assert worker["depends_on"]["spark-master"]["condition"] == "service_healthy"
    for name in ("api", "worker", "monitor"):
        settings = _settings(services[name]["environment"])
        assert settings.spark_master == "spark://spark-master:7077"
        assert services[name]["depends_on"]["spark-master"]["condition"] == "service_healthy"
        # Driver and executors see the lake at the same path: the data dir is one volume.
        assert "recflow-data:/data" in services[name]["volumes"]
        assert str(settings.data_dir) == "/data"
    for spark in (master, worker):
        assert "recflow-data:/data" in spark["volumes"]
        assert spark["image"] == services["api"]["image"]
