"""A real embedded broker (kombu's SQL transport on SQLite) and a look into its queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import create_engine, text

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.jobs import repository as repo
from backend.jobs.queue import make_celery


@pytest.fixture
def celery(settings: Settings) -> Iterator[Celery]:
    app = make_celery(settings)
    yield app
    app.close()


def queued_messages(settings: Settings) -> list[int]:
    """The job ids of the messages waiting in the embedded broker, oldest first."""
    engine = create_engine(settings.celery_broker_url.removeprefix("sqla+"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT payload FROM kombu_message WHERE visible ORDER BY id")
            ).all()
    except Exception:  # no table yet: nothing was ever sent
        return []
    finally:
        engine.dispose()
    return [int(json.loads(json.loads(r[0])["headers"]["argsrepr"])[0]) for r in rows]


def new_job(settings: Settings, **fields: Any) -> int:
    """A job row as some moment of its life leaves it (``fields`` set on top of a new one)."""
    with session_scope(settings.sqlalchemy_url) as s:
        job = repo.add(
            s, "echo", {"message": "m", "sleep_s": 0.0, "stages": 1, "fail": False}, None
        )
        for name, value in fields.items():
            setattr(job, name, value)
        return job.id


def ago(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


def row(settings: Settings, job_id: int) -> repo.Seen:
    with session_scope(settings.sqlalchemy_url) as s:
        seen = repo.seen(s, job_id)
        assert seen is not None
        return seen


def full_row(settings: Settings, job_id: int) -> Any:
    with session_scope(settings.sqlalchemy_url) as s:
        job = repo.get(s, job_id)
        assert job is not None
        s.expunge(job)
        return job
