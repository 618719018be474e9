"""One attempt of a job, run in-process: stages, results, failures, cancel and redelivery."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from backend.catalog import CATALOG
from backend.config import Settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.jobs import repository as repo
from backend.jobs import runner
from backend.jobs.context import TransientJobError
from backend.jobs.echo import EchoParams
from backend.jobs.kind import JobKind, install


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


def _as_left_running(
    settings: Settings, job_id: int, *, beat_age_s: float, worker: str = "elsewhere:1"
) -> None:
    """Put the job in the state a worker leaves it in while it runs (or when it died)."""
    with session_scope(settings.sqlalchemy_url) as s:
        job = repo.get(s, job_id)
        assert job is not None
        job.state, job.attempts, job.worker = "running", 1, worker
        job.heartbeat_at = utcnow() - timedelta(seconds=beat_age_s)


def test_job_left_running_by_a_dead_worker_runs_again(settings: Settings) -> None:
    # A job is taken over only when its heartbeat is stale (or its process is provably gone),
    # never just because it is "running".
    job_id = _new_job(settings, "echo", {"stages": 2})
    _as_left_running(settings, job_id, beat_age_s=settings.job_heartbeat_timeout_s + 1)
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


_TEST_KINDS: list[JobKind] = []


def _register_test_kind(name: str, run, description: str) -> None:  # type: ignore[no-untyped-def]
    """A job kind for these tests, with echo's parameters."""
    _TEST_KINDS.append(JobKind(name, EchoParams, run, description))


@pytest.fixture(autouse=True)
def _test_kinds() -> Iterator[None]:
    """The catalog with this module's kinds added, for each test of the module."""
    previous = install(CATALOG.extended(*_TEST_KINDS))
    yield
    install(previous or CATALOG)


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


def test_a_duplicate_message_for_a_job_running_elsewhere_is_dropped(settings: Settings) -> None:
    job_id = _new_job(settings, "echo", {})
    _as_left_running(settings, job_id, beat_age_s=0, worker="another-host:4242")
    assert runner.execute(settings, job_id) == "skipped"
    job = _job(settings, job_id)
    assert (job.state, job.attempts, job.worker) == ("running", 1, "another-host:4242")
    assert job.stages == []


def test_a_job_whose_process_on_this_host_is_gone_is_taken_over_at_once(
    settings: Settings,
) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process
    job_id = _new_job(settings, "echo", {})
    _as_left_running(settings, job_id, beat_age_s=0, worker=f"{socket.gethostname()}:{gone.pid}")
    assert runner.execute(settings, job_id) == "succeeded"
    job = _job(settings, job_id)
    assert job.attempts == 2 and job.worker == f"{socket.gethostname()}:{os.getpid()}"


def test_a_message_for_a_dead_job_out_of_retries_is_left_to_the_reaper(
    settings: Settings,
) -> None:
    job_id = _new_job(settings, "echo", {})
    _as_left_running(settings, job_id, beat_age_s=settings.job_heartbeat_timeout_s + 1)
    with session_scope(settings.sqlalchemy_url) as s:
        job = repo.get(s, job_id)
        assert job is not None
        job.attempts = settings.job_max_retries + 1
    assert runner.execute(settings, job_id) == "skipped"
    assert _job(settings, job_id).state == "running"


def _fast(settings: Settings, **extra: object) -> Settings:
    return settings.model_copy(
        update={"job_heartbeat_s": 0.05, "job_heartbeat_timeout_s": 1.0, **extra}
    )


def _wait_for(predicate, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_the_heartbeat_advances_while_the_job_runs(settings: Settings) -> None:
    fast = _fast(settings)
    job_id = _new_job(settings, "echo", {"sleep_s": 1.0})
    beats: set[object] = set()

    def watch() -> None:
        while _job(settings, job_id).state in ("queued", "running"):
            beats.add(_job(settings, job_id).heartbeat_at)
            time.sleep(0.02)

    t = threading.Thread(target=watch)
    t.start()
    assert runner.execute(fast, job_id) == "succeeded"
    t.join()
    assert len(beats - {None}) >= 3  # the start, then at least two beats


def test_the_heartbeat_retries_after_a_database_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _fast(settings)
    real_beat = repo.beat
    calls: list[str] = []

    def flaky_beat(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not calls:
            calls.append("error")
            raise OperationalError("UPDATE jobs", {}, Exception("server closed the connection"))
        calls.append("ok")
        return real_beat(*args, **kwargs)

    monkeypatch.setattr(repo, "beat", flaky_beat)
    job_id = _new_job(settings, "echo", {"sleep_s": 1.5})
    assert runner.execute(fast, job_id) == "succeeded"
    assert calls[0] == "error" and "ok" in calls


def test_a_superseded_attempt_stops_and_records_nothing(settings: Settings) -> None:
    fast = _fast(settings)
    job_id = _new_job(settings, "echo", {"sleep_s": 30, "stages": 1})
    outcome: list[str] = []
    t = threading.Thread(target=lambda: outcome.append(runner.execute(fast, job_id)))
    t.start()
    _wait_for(lambda: _job(settings, job_id).state == "running")
    with session_scope(settings.sqlalchemy_url) as s:
        seen = repo.seen(s, job_id)
        assert seen is not None
        # What the reaper does when it judges the heartbeat stale (a long pause, say).
        assert repo.end_stale(s, seen, "failed", error="gone", message="gone", now=utcnow())
    t.join(timeout=20)
    assert outcome == ["superseded"]
    job = _job(settings, job_id)
    assert job.state == "failed" and job.error == "gone" and job.result is None


def _leaky(ctx, params):  # type: ignore[no-untyped-def]
    secret = ctx.settings.data_dir.resolve() / "models" / "x" / "factors.npz"
    raise FileNotFoundError(
        f"[Errno 2] No such file or directory: '{secret}' (also tried /srv/secret/ratings.csv)"
    )


def _silent(ctx, params):  # type: ignore[no-untyped-def]
    raise KeyError()


_register_test_kind("test-leaky", _leaky, "an error naming server paths")
_register_test_kind("test-silent", _silent, "an error with no message")


def test_a_failed_job_error_has_no_traceback_and_no_server_path(settings: Settings) -> None:
    job_id = _new_job(settings, "test-leaky", {})
    assert runner.execute(settings, job_id) == "failed"
    error = _job(settings, job_id).error or ""
    assert error == (
        "FileNotFoundError: [Errno 2] No such file or directory: 'models/x/factors.npz' "
        "(also tried …/ratings.csv)"
    )
    assert str(settings.data_dir.resolve()) not in error and "/srv" not in error

    job_id = _new_job(settings, "test-silent", {})
    assert runner.execute(settings, job_id) == "failed"
    error = _job(settings, job_id).error or ""
    assert error == "KeyError" and "Traceback" not in error and "File " not in error
