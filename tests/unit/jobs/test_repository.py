"""The compare-and-set transitions: of two processes that saw the same row, exactly one wins."""

from __future__ import annotations

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.jobs import repository as repo
from tests.unit.jobs.conftest import ago, full_row, new_job, row


def test_only_one_of_two_starts_from_the_same_row_wins(settings: Settings) -> None:
    job_id = new_job(settings)
    seen = row(settings, job_id)
    with session_scope(settings.sqlalchemy_url) as s:
        assert repo.start(s, seen, "w1:1", utcnow(), "attempt 1 started")
    with session_scope(settings.sqlalchemy_url) as s:
        assert not repo.start(s, seen, "w2:2", utcnow(), "attempt 1 started")
    job = full_row(settings, job_id)
    assert (job.state, job.attempts, job.worker) == ("running", 1, "w1:1")
    assert job.heartbeat_at is not None and job.started_at is not None


def test_a_cancel_requested_job_never_starts(settings: Settings) -> None:
    job_id = new_job(settings, cancel_requested=True)
    with session_scope(settings.sqlalchemy_url) as s:
        assert not repo.start(s, row(settings, job_id), "w1:1", utcnow(), "started")
    assert row(settings, job_id).state == "queued"


def test_the_attempt_number_fences_heartbeats_and_ends(settings: Settings) -> None:
    job_id = new_job(settings, state="running", attempts=2, heartbeat_at=ago(1))
    now = utcnow()
    with session_scope(settings.sqlalchemy_url) as s:
        assert not repo.beat(s, job_id, 1, now)  # an older attempt
        assert not repo.end_attempt(
            s, job_id, 1, "succeeded", result={"x": 1}, error=None, message="done", now=now
        )
        assert repo.beat(s, job_id, 2, now)
        assert repo.end_attempt(
            s, job_id, 2, "succeeded", result={"x": 2}, error=None, message="done", now=now
        )
        # Ended: a second end of the same attempt (a duplicate) changes nothing.
        assert not repo.end_attempt(
            s, job_id, 2, "failed", result=None, error="late", message="late", now=now
        )
        assert not repo.beat(s, job_id, 2, now)
    job = full_row(settings, job_id)
    assert (job.state, job.result, job.error, job.progress) == ("succeeded", {"x": 2}, None, 1.0)


def test_the_reaper_loses_to_a_heartbeat_written_after_it_looked(settings: Settings) -> None:
    job_id = new_job(settings, state="running", attempts=1, heartbeat_at=ago(100))
    seen = row(settings, job_id)
    with session_scope(settings.sqlalchemy_url) as s:
        assert repo.beat(s, job_id, 1, utcnow())  # the worker was only slow
    with session_scope(settings.sqlalchemy_url) as s:
        assert not repo.requeue_stale(s, seen, "stale")
        assert not repo.end_stale(s, seen, "failed", error="x", message="x", now=utcnow())
    assert row(settings, job_id).state == "running"


def test_two_reapers_requeue_a_stale_job_once(settings: Settings) -> None:
    job_id = new_job(settings, state="running", attempts=1, heartbeat_at=ago(100), worker="w:1")
    seen = row(settings, job_id)
    with session_scope(settings.sqlalchemy_url) as s:
        first = repo.requeue_stale(s, seen, "its worker stopped responding")
    with session_scope(settings.sqlalchemy_url) as s:
        second = repo.requeue_stale(s, seen, "its worker stopped responding")
    assert (first, second) == (True, False)
    after = row(settings, job_id)
    assert (after.state, after.attempts, after.heartbeat_at, after.dispatched_at, after.worker) == (
        "queued",
        1,
        None,
        None,
        None,
    )


def test_the_reaper_does_not_requeue_a_cancel_requested_job(settings: Settings) -> None:
    job_id = new_job(
        settings, state="running", attempts=1, heartbeat_at=ago(100), cancel_requested=True
    )
    with session_scope(settings.sqlalchemy_url) as s:
        assert not repo.requeue_stale(s, row(settings, job_id), "stale")
    assert row(settings, job_id).state == "running"


def test_one_of_two_dispatch_claims_wins_and_a_release_undoes_it(settings: Settings) -> None:
    job_id = new_job(settings)
    seen = row(settings, job_id)
    now = utcnow()
    with session_scope(settings.sqlalchemy_url) as s:
        assert repo.claim_dispatch(s, seen, now)
    with session_scope(settings.sqlalchemy_url) as s:
        assert not repo.claim_dispatch(s, seen, utcnow())
    claimed = row(settings, job_id)
    assert claimed.dispatched_at == now and claimed.dispatches == 1
    with session_scope(settings.sqlalchemy_url) as s:
        assert repo.release_dispatch(s, seen, now)
    released = row(settings, job_id)
    assert released.dispatched_at is None and released.dispatches == 0


def test_stale_and_undispatched_queries_pick_only_what_they_name(settings: Settings) -> None:
    stale = new_job(settings, state="running", attempts=1, heartbeat_at=ago(100))
    new_job(settings, state="running", attempts=1, heartbeat_at=ago(1))
    legacy = new_job(settings, state="running", attempts=1, started_at=ago(100))
    never = new_job(settings, created_at=ago(60))
    new_job(settings)  # within the grace period
    new_job(settings, created_at=ago(60), dispatched_at=ago(30), dispatches=1)
    old = new_job(settings, created_at=ago(900), dispatched_at=ago(600), dispatches=1)
    new_job(settings, created_at=ago(60), cancel_requested=True)
    with session_scope(settings.sqlalchemy_url) as s:
        assert [j.id for j in repo.stale_running(s, ago(50), 100)] == [stale, legacy]
        assert [j.id for j in repo.undispatched(s, ago(10), 100)] == [never]
        assert [j.id for j in repo.dispatched_before(s, ago(300), 100)] == [old]
