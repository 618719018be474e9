"""Submit, idempotent retry and cancel, as the job platform's rules (a real embedded broker)."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from backend.config import Settings
from backend.db.session import get_sessionmaker, session_scope
from backend.errors import InvalidInputError
from backend.jobs import service, supervisor
from backend.jobs.kind import installed
from tests.unit.jobs.conftest import ago, full_row, new_job, queued_messages, row

ECHO = {"message": "m"}


def test_submit_sends_and_records_the_dispatch(settings: Settings, celery: Celery) -> None:
    with get_sessionmaker(settings.sqlalchemy_url)() as s:
        job, created = service.submit(s, celery, "echo", ECHO, None)
    assert created and queued_messages(settings) == [job.id]
    after = row(settings, job.id)
    assert after.dispatched_at is not None and after.dispatches == 1


def test_an_idempotent_retry_sends_a_job_its_first_request_never_sent(
    settings: Settings, celery: Celery
) -> None:
    # The first request committed the row, then died before its send.
    with session_scope(settings.sqlalchemy_url) as s:
        first, created = service.create(s, "echo", ECHO, "key-1")
    assert created and queued_messages(settings) == []
    with get_sessionmaker(settings.sqlalchemy_url)() as s:
        again, created = service.submit(s, celery, "echo", ECHO, "key-1")
    assert not created and again.id == first.id
    assert queued_messages(settings) == [first.id]
    assert again.dispatched_at is not None and again.dispatches == 1
    # A further retry finds it sent: no second message.
    with get_sessionmaker(settings.sqlalchemy_url)() as s:
        service.submit(s, celery, "echo", ECHO, "key-1")
    assert queued_messages(settings) == [first.id]


def test_cancel_ends_a_job_whose_worker_is_gone_at_once(settings: Settings, celery: Celery) -> None:
    job_id = new_job(
        settings,
        state="running",
        attempts=1,
        heartbeat_at=ago(settings.job_heartbeat_timeout_s + 5),
    )
    with get_sessionmaker(settings.sqlalchemy_url)() as s:
        job = service.cancel(
            s, celery, job_id, heartbeat_timeout_s=settings.job_heartbeat_timeout_s
        )
        s.commit()
    assert job.state == "cancelled" and job.cancel_requested
    assert "stopped responding" in (job.message or "")
    # The reaper leaves it ended; nothing is sent.
    report = supervisor.run_once(settings, celery)
    assert not report and row(settings, job_id).state == "cancelled"
    assert queued_messages(settings) == []


def test_cancel_of_a_live_running_job_asks_it_to_stop(settings: Settings, celery: Celery) -> None:
    job_id = new_job(settings, state="running", attempts=1, heartbeat_at=ago(1))
    with get_sessionmaker(settings.sqlalchemy_url)() as s:
        job = service.cancel(
            s, celery, job_id, heartbeat_timeout_s=settings.job_heartbeat_timeout_s
        )
        s.commit()
    assert job.state == "running" and job.cancel_requested
    assert full_row(settings, job_id).message == "cancel requested; stopping at the next checkpoint"


def test_pages_walk_every_job_newest_first(settings: Settings) -> None:
    ids = [new_job(settings) for _ in range(5)]
    new_job(settings, state="succeeded")
    seen: list[int] = []
    cursor = None
    with session_scope(settings.sqlalchemy_url) as s:
        while True:
            page = service.page(s, state="queued", limit=2, cursor=cursor)
            seen += [j.id for j in page.items]
            assert all(j.stages == [] for j in page.items)  # a listing carries no stages
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == ids[::-1]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"kind": "nope"}, "unknown job kind 'nope'; known kinds: "),
        ({"cursor": "garbage!"}, "cursor is not valid"),
        ({"cursor": service.encode_cursor(2**31)}, "cursor is not valid"),  # beyond the ids
        ({"cursor": service.encode_cursor(0)}, "cursor is not valid"),
    ],
)
def test_a_bad_kind_or_cursor_is_invalid_input(
    settings: Settings, kwargs: dict[str, Any], needle: str
) -> None:
    with session_scope(settings.sqlalchemy_url) as s, pytest.raises(InvalidInputError) as caught:
        service.page(s, **kwargs)
    assert needle in caught.value.message


def test_kinds_are_the_installed_catalog_with_their_params_schema() -> None:
    kinds = {k.name: k for k in service.kinds()}
    assert set(kinds) == set(installed().names())
    assert "sleep_s" in kinds["echo"].params_schema["properties"]
