"""Alembic is the only way the schema changes: migrations and models must agree."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from backend.db import tables  # noqa: F401
from backend.db.base import Base
from backend.db.migrate import alembic_config, upgrade
from tests.conftest import service_env


def _urls(tmp_path: Path) -> list[str]:
    urls = [f"sqlite:///{tmp_path / 'm.db'}"]
    urls.append(service_env("RECFLOW_TEST_DATABASE_URL"))
    return urls


def _reset(url: str) -> None:
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()


def test_migrations_match_models_on_every_database(tmp_path: Path) -> None:
    for url in _urls(tmp_path):
        _reset(url)
        upgrade(url)
        engine = create_engine(url)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
            assert diff == [], f"models and migrations differ on {engine.dialect.name}: {diff}"
            assert {"jobs", "job_stages", "models", "metrics"} <= set(
                inspect(conn).get_table_names()
            )
        engine.dispose()


def test_downgrade_to_base_and_up_again(tmp_path: Path) -> None:
    from alembic import command

    for url in _urls(tmp_path):
        _reset(url)
        cfg = alembic_config(url)
        command.upgrade(cfg, "head")
        command.downgrade(cfg, "base")
        engine = create_engine(url)
        assert "jobs" not in inspect(engine).get_table_names()
        engine.dispose()
        command.upgrade(cfg, "head")
