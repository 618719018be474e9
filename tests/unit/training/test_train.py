"""``train`` across a worker's death between save and register: one model, no orphan files.

A worker killed at that point is reproduced in-process with the real code paths: the job waits
at the ``train.after_save`` pause point (RECFLOW_JOB_PAUSE_AT), the reaper's transition re-queues
it, and the paused attempt, finding that it no longer owns the job, stops without registering.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from backend.config import Settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.jobs import repository as jobs_repo
from backend.jobs import runner, service
from backend.jobs.context import AttemptSuperseded
from backend.jobs.stages import StageTimer
from backend.recsys.artifacts import load_artifact
from backend.registry import repository as models_repo
from backend.training import train

SYNTH = {"format": "synthetic", "n_users": 120, "n_items": 80, "n_ratings": 3_000, "seed": 3}


def _submit(settings: Settings, **extra: Any) -> int:
    params = {"data": SYNTH, "model": {"params": {"n_epochs": 3, "random_state": 1}}, **extra}
    with session_scope(settings.sqlalchemy_url) as s:
        return service.create(s, "train", params, None)[0].id


def _job(settings: Settings, job_id: int) -> Any:
    with session_scope(settings.sqlalchemy_url) as s:
        job = jobs_repo.get(s, job_id, with_stages=True)
        assert job is not None
        s.expunge_all()
        return job


def _models(settings: Settings) -> list[tuple[str, int | None]]:
    with session_scope(settings.sqlalchemy_url) as s:
        return [(m.version, m.job_id) for m in models_repo.page(s, 100)]


def _entries(settings: Settings) -> list[str]:
    """What the models directory holds, claims aside."""
    return sorted(p.name for p in settings.models_dir.iterdir() if p.name != ".claims")


def _die_after_save(settings: Settings, job_id: int) -> None:
    """Run the job until it has saved its artifact, then take the job from it (as the reaper
    does when the worker's heartbeat stops) so that it never registers."""
    paused = settings.model_copy(
        update={
            "job_pause_at": "train.after_save",
            "job_heartbeat_s": 0.05,
            "job_heartbeat_timeout_s": 1.0,
        }
    )
    outcome: list[str] = []
    t = threading.Thread(target=lambda: outcome.append(runner.execute(paused, job_id)))
    t.start()
    try:
        deadline = time.monotonic() + 60
        while not (_job(settings, job_id).message or "").startswith("paused at train.after_save"):
            assert t.is_alive() and time.monotonic() < deadline, _job(settings, job_id).error
            time.sleep(0.05)
        # The reaper's transition; the paused attempt is still beating, so it may lose a race.
        for _ in range(100):
            with session_scope(settings.sqlalchemy_url) as s:
                seen = jobs_repo.seen(s, job_id)
                assert seen is not None
                if jobs_repo.requeue_stale(s, seen, "its worker stopped responding"):
                    break
        t.join(timeout=30)
    finally:
        if t.is_alive():  # a failed test must not leave the attempt waiting for an hour
            with session_scope(settings.sqlalchemy_url) as s:
                jobs_repo.request_cancel(s, job_id)
            t.join()
    assert outcome == ["superseded"]


def test_a_retry_registers_the_artifact_its_dead_attempt_saved(settings: Settings) -> None:
    job_id = _submit(settings)
    _die_after_save(settings, job_id)
    [saved] = _entries(settings)
    assert _models(settings) == []  # saved, never registered
    assert runner.execute(settings, job_id) == "succeeded"
    job = _job(settings, job_id)
    assert job.attempts == 2 and job.result["version"] == saved
    assert _models(settings) == [(saved, job_id)]
    assert _entries(settings) == [saved]
    save = [st for st in job.stages if st.name == "save" and st.attempt == 2]
    assert save[0].extra["reused"] is True


def test_a_retry_replaces_its_own_partial_artifact_and_staging_dirs(settings: Settings) -> None:
    job_id = _submit(settings, version="v-partial")
    _die_after_save(settings, job_id)
    (settings.models_dir / "v-partial" / "factors.npz").unlink()  # half gone
    (settings.models_dir / ".v-partial.dead.tmp").mkdir()  # a dead attempt's staging dir
    assert runner.execute(settings, job_id) == "succeeded"
    assert _models(settings) == [("v-partial", job_id)]
    assert _entries(settings) == ["v-partial"]
    load_artifact(settings.models_dir / "v-partial")  # complete: the manifest checks


def test_a_retry_after_register_reuses_the_registered_model(settings: Settings) -> None:
    job_id = _submit(settings, version="v-done", activate="always")
    assert runner.execute(settings, job_id) == "succeeded"
    first = _job(settings, job_id).result
    # Killed after registering but before recording its end: the job is running again.
    with session_scope(settings.sqlalchemy_url) as s:
        job = jobs_repo.get(s, job_id)
        assert job is not None
        job.state = "running"
        job.heartbeat_at = None
        job.started_at = job.created_at.replace(year=2000)
    assert runner.execute(settings, job_id) == "succeeded"
    again = _job(settings, job_id).result
    assert again["model_id"] == first["model_id"] and again["reused"] is True
    assert again["activated"] is True
    assert _models(settings) == [("v-done", job_id)]
    assert _entries(settings) == ["v-done"]


def test_another_job_asking_for_a_taken_version_gets_a_clear_error(settings: Settings) -> None:
    first = _submit(settings, version="v1")
    assert runner.execute(settings, first) == "succeeded"
    before = sorted(p.name for p in (settings.models_dir / "v1").iterdir())
    second = _submit(settings, version="v1")
    assert runner.execute(settings, second) == "failed"
    assert "model version 'v1' already exists" in (_job(settings, second).error or "")
    assert _models(settings) == [("v1", first)]
    assert sorted(p.name for p in (settings.models_dir / "v1").iterdir()) == before


def test_a_version_saved_but_never_registered_by_another_job_is_not_taken(
    settings: Settings,
) -> None:
    owner = _submit(settings, version="v2")
    _die_after_save(settings, owner)
    other = _submit(settings, version="v2")
    assert runner.execute(settings, other) == "failed"
    assert "v2" in (_job(settings, other).error or "")
    assert runner.execute(settings, owner) == "succeeded"  # the owner's retry still registers
    assert _models(settings) == [("v2", owner)]


def test_a_job_failing_at_register_leaves_no_artifact(settings: Settings) -> None:
    job_id = _submit(settings, version="v3", validate_k=2)
    # Metric rows this job will write already exist: registering fails for good (a unique key).
    with session_scope(settings.sqlalchemy_url) as s:
        models_repo.add_metrics(s, job_id, None, [("svd", f, "rmse", 1.0) for f in range(3)])
    assert runner.execute(settings, job_id) == "failed"
    assert "IntegrityError" in (_job(settings, job_id).error or "")
    assert _models(settings) == [] and _entries(settings) == []
    assert not (settings.models_dir / ".claims" / "v3.json").exists()


def test_what_a_job_that_ended_for_good_left_unregistered_is_removed_by_the_next_train(
    settings: Settings,
) -> None:
    dead = _submit(settings, version="v4")
    _die_after_save(settings, dead)
    assert _entries(settings) == ["v4"]
    # It ends for good before any retry (as when the reaper finds its budget spent), so
    # nothing will ever register v4.
    with session_scope(settings.sqlalchemy_url) as s:
        seen = jobs_repo.seen(s, dead)
        assert seen is not None
        assert jobs_repo.end_unstarted(
            s, seen, "failed", error="gave up", message="gave up", now=seen.created_at
        )
    assert _job(settings, dead).state == "failed"
    nxt = _submit(settings, version="v5")
    assert runner.execute(settings, nxt) == "succeeded"
    assert _entries(settings) == ["v5"]  # v4's artifact is gone, v5's stays
    assert not (settings.models_dir / ".claims" / "v4.json").exists()
    assert _models(settings) == [("v5", nxt)]
    [save] = [st for st in _job(settings, nxt).stages if st.name == "save"]
    assert save.extra["orphans_removed"] == ["v4"]


def test_an_attempt_that_lost_the_job_neither_registers_nor_removes_the_artifact(
    settings: Settings,
) -> None:
    # A worker slow but alive: the reaper re-queued its job, and attempt 2 now owns it. Attempt
    # 1 runs on (its heartbeat thread has not noticed yet) and reaches register.
    params = {"data": SYNTH, "model": {"params": {"n_epochs": 3}}, "version": "v6"}
    with session_scope(settings.sqlalchemy_url) as s:
        job, _ = service.create(s, "train", params, None, settings=settings)
        job.state, job.attempts, job.heartbeat_at = "running", 2, utcnow()
        job_id = job.id
    stale = StageTimer(settings, job_id, 1)
    with pytest.raises(AttemptSuperseded):
        train.run(stale, service.parse_params("train", params, settings))  # type: ignore[arg-type]
    assert _models(settings) == []  # not registered by the attempt that lost the job
    assert _entries(settings) == ["v6"]  # and left whole for the attempt that owns it
