"""The two stacks the integration suite runs on: embedded defaults, and the real services."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backend.cli.stack import Stack, running_stack
from backend.config import Settings
from backend.db.migrate import reset
from tests.conftest import ML100K, service_env


def stack_env(kind: str, data_dir: Path) -> dict[str, str]:
    # Job params may name files under the shared MovieLens data and the run's pytest temp dir
    # (which holds data_dir and every test's tmp_path); nothing else.
    roots = os.pathsep.join([str(ML100K.parent), str(data_dir.resolve().parent)])
    env = {"RECFLOW_DATA_DIR": str(data_dir), "RECFLOW_DATA_ROOTS": roots}
    if kind == "services":
        redis = service_env("RECFLOW_REDIS_URL").rsplit("/", 1)[0]
        env.update(
            RECFLOW_ENV="production",
            # Production needs a key: this one has every scope; Stack.headers and
            # Stack.client() send it.
            RECFLOW_API_KEY=secrets.token_urlsafe(24),
            RECFLOW_DATABASE_URL=service_env("RECFLOW_TEST_DATABASE_URL"),
            RECFLOW_BROKER_URL=f"{redis}/5",
            RECFLOW_RESULT_BACKEND=f"{redis}/6",
            RECFLOW_REDIS_URL=f"{redis}/7",
        )
    return env


def settings_for(env: dict[str, str]) -> Settings:
    return Settings(**{k.removeprefix("RECFLOW_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]


def prepared(env: dict[str, str]) -> Settings:
    """The settings of ``env``, with its directories made, its Redis databases flushed and its
    database migrated from empty."""
    settings = settings_for(env)
    settings.ensure_dirs()
    if settings.celery_broker_url.startswith("redis"):
        import redis

        for url in (settings.celery_broker_url, settings.celery_result_backend):
            redis.Redis.from_url(url).flushdb()
    reset(settings.sqlalchemy_url)
    return settings


@contextmanager
def started(kind: str, data_dir: Path, **kwargs: int) -> Iterator[tuple[Stack, Settings]]:
    """Migrated database, a uvicorn API and a real Celery worker process."""
    env = stack_env(kind, data_dir)
    settings = prepared(env)
    with running_stack(data_dir / "logs", env=env, **kwargs) as stack:
        yield stack, settings
