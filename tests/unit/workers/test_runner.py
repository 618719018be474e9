"""One attempt of a job, run in-process: stages, results, failures, cancel and redelivery."""

from __future__ import annotations

import threading
import time

import pytest

from backend.config import Settings
from backend.db.session import session_scope
from backend.jobs import repository as repo
from backend.jobs.context import TransientJobError
from backend.jobs.kinds import JobKind, register
from backend.jobs.kinds.echo import EchoParams
from workers import runner


def _new_job(settings: Settings, kind: str, params: dict[str, object]) -> int:
    with session_scope(settings.sqlalchemy_url) as s:
        return repo.add(s, kind, params, None).id


def _job(settings: Settings, job_id: int):  # type: ignore[no-untyped-def]
    with session_scope(settings.sqlalchemy_url) as s:
        job = repo.get(s, job_id, with_stages=True)
        assert job is not None
        s.expunge_all()
        return job


def test_success_records_stages_result_and_progress(settings: Settings) -> None:
    job_id = _new_job(settings, "echo", {"message": "m", "sleep_s": 0.3, "stages": 3})
    seen: list[float] = []
    assert runner.execute(settings, job_id, on_progress=lambda f, _m: seen.append(f)) == "succeeded"
    job = _job(settings, job_id)
    assert job.state == "succeeded" and job.progress == 1.0 and job.attempts == 1
    assert job.result == {"echo": {"message": "m", "sleep_s": 0.3, "stages": 3, "fail": False}}
    assert [s.name for s in job.stages] == ["step-1", "step-2", "step-3"]
    for st in job.stages:
        assert st.duration_s is not None and st.duration_s > 0.08
        assert st.finished_at is not None and st.finished_at >= st.started_at
        assert (st.rows_in, st.rows_out) == (1, 1)
    assert seen and seen[-1] == 1.0
    assert job.started_at is not None and job.finished_at is not None


def test_failure_records_the_error(settings: Settings) -> None:
    job_id = _new_job(settings, "echo", {"fail": True})
    assert runner.execute(settings, job_id) == "failed"
    job = _job(settings, job_id)
    assert job.state == "failed" and job.result is None
    assert job.error == "RuntimeError: echo was asked to fail (params.fail=true)"


def test_redelivery_of_an_ended_job_does_nothing(settings: Settings) -> None:
    job_id = _new_job(settings, "echo", {})
    runner.execute(settings, job_id)
    first = _job(settings, job_id)
    assert runner.execute(settings, job_id) == "skipped"
    again = _job(settings, job_id)
    assert again.attempts == first.attempts == 1 and again.result == first.result


def test_job_left_running_by_a_dead_worker_runs_again(settings: Settings) -> None:
    job_id = _new_job(settings, "echo", {"stages": 2})
    with session_scope(settings.sqlalchemy_url) as s:
        job = repo.get(s, job_id)
        assert job is not None
        job.state, job.attempts = "running", 1  # as a killed worker leaves it
    assert runner.execute(settings, job_id) == "succeeded"
    job = _job(settings, job_id)
    assert job.attempts == 2
    assert [s.attempt for s in job.stages] == [2, 2]


def test_cancel_while_running_stops_at_a_checkpoint(settings: Settings) -> None:
    job_id = _new_job(settings, "echo", {"sleep_s": 30})

    def request_cancel() -> None:
        time.sleep(0.5)
        with session_scope(settings.sqlalchemy_url) as s:
            job = repo.get(s, job_id)
            assert job is not None
            job.cancel_requested = True

    t = threading.Thread(target=request_cancel)
    t.start()
    t0 = time.monotonic()
    assert runner.execute(settings, job_id) == "cancelled"
    t.join()
    assert time.monotonic() - t0 < 5
    job = _job(settings, job_id)
    assert job.state == "cancelled" and job.stages[0].extra == {"aborted": True}


def _flaky(ctx, params):  # type: ignore[no-untyped-def]
    raise TransientJobError("service briefly unreachable")


def _register_test_kind(name: str, run, description: str) -> None:  # type: ignore[no-untyped-def]
    """A job kind for these tests, with echo's parameters."""
    register(JobKind(name, EchoParams, run, description))


_register_test_kind("test-flaky", _flaky, "always transient")


def test_transient_error_requeues_then_fails_when_retries_run_out(settings: Settings) -> None:
    job_id = _new_job(settings, "test-flaky", {})
    with pytest.raises(TransientJobError):
        runner.execute(settings, job_id, retries_left=1)
    assert _job(settings, job_id).state == "queued"
    assert runner.execute(settings, job_id, retries_left=0) == "failed"
    job = _job(settings, job_id)
    assert job.state == "failed" and "gave up after retries" in (job.error or "")


def _nested(ctx, params):  # type: ignore[no-untyped-def]
    with ctx.stage("outer"):
        time.sleep(0.1)
        with ctx.stage("inner"):
            time.sleep(0.2)
        time.sleep(0.15)  # a batch timed elsewhere, reported when it ends
        ctx.record("batch", duration_s=0.15)
        time.sleep(0.1)
    return {}


_register_test_kind("test-nested", _nested, "stages within a stage")


def test_a_stage_times_only_itself_when_others_run_within_it(settings: Settings) -> None:
    job_id = _new_job(settings, "test-nested", {})
    assert runner.execute(settings, job_id) == "succeeded"
    stages = {s.name: s for s in _job(settings, job_id).stages}
    outer, inner, batch = stages["outer"], stages["inner"], stages["batch"]
    assert inner.duration_s is not None and inner.duration_s >= 0.2
    assert "wall_s" not in inner.extra  # nothing ran within it
    assert batch.duration_s == pytest.approx(0.15)
    nested = outer.extra["nested_s"]
    assert nested == pytest.approx(inner.duration_s + 0.15)
    assert outer.duration_s == pytest.approx(outer.extra["wall_s"] - nested)
    assert 0.2 <= outer.duration_s < outer.extra["wall_s"] - 0.3  # its two own sleeps
    # The three add up to the outer stage's wall time: nothing is counted twice.
    total = outer.duration_s + inner.duration_s + batch.duration_s
    assert total == pytest.approx(outer.extra["wall_s"])
