"""The reaper and the reconciler, against a real embedded broker (kombu's SQL transport)."""

from __future__ import annotations

import time

import pytest
from celery import Celery
from pydantic import ValidationError
from sqlalchemy.orm import sessionmaker

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.session import get_engine
from backend.jobs import supervisor
from backend.jobs.queue import make_celery
from tests.unit.jobs.conftest import ago, full_row, new_job, queued_messages, row


def _factory(settings: Settings) -> sessionmaker:  # type: ignore[type-arg]
    return sessionmaker(bind=get_engine(settings.sqlalchemy_url), expire_on_commit=False)


def test_the_reconciler_sends_only_jobs_whose_message_is_missing_or_old(
    settings: Settings, celery: Celery
) -> None:
    never = new_job(settings, created_at=ago(60))  # its submitter died before the send
    new_job(settings)  # just committed: its submitter is about to send it
    new_job(settings, created_at=ago(60), dispatched_at=ago(5), dispatches=1)  # sent, waiting
    lost = new_job(settings, created_at=ago(900), dispatched_at=ago(400), dispatches=1)
    backed_off = new_job(settings, created_at=ago(900), dispatched_at=ago(400), dispatches=2)
    new_job(settings, created_at=ago(60), state="running", attempts=1, heartbeat_at=ago(1))
    new_job(settings, created_at=ago(60), state="succeeded", attempts=1)
    report = supervisor.reconcile(_factory(settings), celery, settings, utcnow())
    assert report.sent == [never] and report.resent == [lost] and not report.send_errors
    assert queued_messages(settings) == [never, lost]
    assert row(settings, never).dispatches == 1 and row(settings, lost).dispatches == 2
    assert full_row(settings, never).celery_task_id
    # The re-send doubled the bound for the next one: 400 s < 2 x 300 s.
    assert row(settings, backed_off).dispatches == 2
    again = supervisor.reconcile(_factory(settings), celery, settings, utcnow())
    assert not again and queued_messages(settings) == [never, lost]


def test_the_reaper_requeues_within_the_budget_then_fails(
    settings: Settings, celery: Celery
) -> None:
    stale = ago(settings.job_heartbeat_timeout_s + 5)
    retry = new_job(
        settings,
        state="running",
        attempts=1,
        heartbeat_at=stale,
        worker="w:1",
        created_at=ago(settings.job_heartbeat_timeout_s + 10),
    )
    spent = new_job(
        settings, state="running", attempts=settings.job_max_retries + 1, heartbeat_at=stale
    )
    alive = new_job(settings, state="running", attempts=1, heartbeat_at=ago(1))
    report = supervisor.run_once(settings, celery, _factory(settings))
    assert report.requeued == [retry] and report.failed == [spent]
    # Re-queued and sent again in the same pass.
    assert report.sent == [retry] and queued_messages(settings) == [retry]
    requeued = full_row(settings, retry)
    assert (requeued.state, requeued.attempts, requeued.worker) == ("queued", 1, None)
    assert "its worker stopped responding" in (requeued.message or "")
    failed = full_row(settings, spent)
    assert failed.state == "failed" and failed.finished_at is not None
    assert "its worker stopped responding" in (failed.error or "")
    assert "retry budget is spent" in (failed.error or "")
    assert row(settings, alive).state == "running"


def test_the_reaper_cancels_a_dead_job_whose_cancel_was_requested(
    settings: Settings, celery: Celery
) -> None:
    job_id = new_job(
        settings,
        state="running",
        attempts=1,
        heartbeat_at=ago(settings.job_heartbeat_timeout_s + 5),
        cancel_requested=True,
    )
    report = supervisor.run_once(settings, celery, _factory(settings))
    assert report.cancelled == [job_id] and not report.sent
    assert row(settings, job_id).state == "cancelled"
    assert queued_messages(settings) == []


def test_a_send_that_fails_is_released_for_the_next_pass(settings: Settings) -> None:
    down = settings.model_copy(
        update={"broker_url": "redis://127.0.0.1:9/0", "broker_connect_timeout_s": 0.2}
    )
    job_id = new_job(settings, created_at=ago(60))
    report = supervisor.reconcile(_factory(settings), make_celery(down), settings, utcnow())
    assert report.send_errors == [job_id] and not report.sent
    after = row(settings, job_id)
    assert after.state == "queued" and after.dispatched_at is None and after.dispatches == 0


def test_the_supervisor_thread_sends_a_lost_job_and_stops(
    settings: Settings, celery: Celery
) -> None:
    quick = settings.model_copy(update={"job_supervisor_interval_s": 0.05})
    job_id = new_job(settings, created_at=ago(60))
    sup = supervisor.Supervisor(quick, celery, name="test supervisor")
    sup.start()
    try:
        deadline = time.monotonic() + 20
        while row(settings, job_id).dispatched_at is None:
            assert time.monotonic() < deadline, "the supervisor never sent the job"
            time.sleep(0.02)
    finally:
        sup.stop()
    assert queued_messages(settings) == [job_id]


def test_settings_refuse_a_heartbeat_timeout_not_above_the_interval() -> None:
    with pytest.raises(ValidationError, match="RECFLOW_JOB_HEARTBEAT_TIMEOUT_S must be larger"):
        Settings(job_heartbeat_s=10, job_heartbeat_timeout_s=10)
    with pytest.raises(ValidationError, match="RECFLOW_JOB_REDISPATCH_AFTER_S must be larger"):
        Settings(job_dispatch_grace_s=30, job_redispatch_after_s=20)
    defaults = Settings()
    # Detection within a minute: stale after the timeout, noticed within one pass.
    assert defaults.job_heartbeat_timeout_s + defaults.job_supervisor_interval_s <= 60


def test_the_reconciler_ends_a_queued_job_whose_cancel_was_requested_long_ago(
    settings: Settings, celery: Celery
) -> None:
    # Cancelled while running, then re-queued for a retry whose message never went out: queued,
    # cancel requested, no message. Nothing else would ever end it.
    orphan = new_job(
        settings, attempts=1, cancel_requested=True, dispatched_at=ago(60), updated_at=ago(60)
    )
    fresh = new_job(settings, cancel_requested=True)  # being handled by its own request now
    report = supervisor.reconcile(_factory(settings), celery, settings, utcnow())
    assert report.cancelled == [orphan] and not report.sent and not report.resent
    ended = full_row(settings, orphan)
    assert ended.state == "cancelled" and ended.finished_at is not None
    assert row(settings, fresh).state == "queued"
    assert queued_messages(settings) == []
