"""The fault suite: no committed job is lost, stuck or run twice, whatever is killed or restarted.

Real processes (a uvicorn API and a Celery worker, each in its own process group) on the
embedded stack and on the services (PostgreSQL + Redis), with short supervision settings so
that a round takes seconds: heartbeat every 0.5 s, stale after 3 s, a supervisor pass every
0.5 s, a never-sent job sent after 2 s, a sent-but-lost one after 8 s. Each fault runs 3 rounds.

The job rows are read straight from the database: the API is one of the things killed.
The tests that restart PostgreSQL or Redis must run under the services lock
(``flock /tmp/recflow-services.lock pytest ...``), and leave both services up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from backend.cli.stack import free_port, stop, wait_ready, worker_command
from backend.config import Settings
from backend.db.tables import Job, JobStage, ModelVersion
from tests.conftest import SERVICES
from tests.integration.stacks import prepared, stack_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 3
FAST = {
    "RECFLOW_JOB_HEARTBEAT_S": "0.5",
    "RECFLOW_JOB_HEARTBEAT_TIMEOUT_S": "3",
    "RECFLOW_JOB_SUPERVISOR_INTERVAL_S": "0.5",
    "RECFLOW_JOB_DISPATCH_GRACE_S": "2",
    "RECFLOW_JOB_REDISPATCH_AFTER_S": "8",
}
# The reaper's bound: a heartbeat is stale after the timeout, and a pass comes within an interval.
REAPER_BOUND_S = 3 + 0.5
# What a loaded two-core machine adds: a supervisor's pass, this test's polling, process start.
MARGIN_S = 10.0
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Cluster:
    """An API and a worker, each started, killed and restarted on its own."""

    kind: str
    env: dict[str, str]
    settings: Settings
    logs: Path
    port: int = field(default_factory=free_port)
    api: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    engine: Engine | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        key = self.env.get("RECFLOW_API_KEY")
        return {"X-API-Key": key} if key else {}

    def _spawn(self, args: list[str], log: str, extra: dict[str, str]) -> subprocess.Popen[bytes]:
        out = (self.logs / log).open("ab")
        return subprocess.Popen(
            args,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env, **extra},
            start_new_session=True,  # its own process group: one signal reaches all of it
        )

    def start_api(self) -> None:
        command = [sys.executable, "-m", "uvicorn", "backend.api.app:create_app", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.api = self._spawn(command, "api.log", {})
        wait_ready(self.url, [self.api], timeout=90)

    def start_worker(self, **extra: str) -> None:
        self.worker = self._spawn(worker_command(2, loglevel="INFO"), "worker.log", extra)

    @staticmethod
    def kill(proc: subprocess.Popen[bytes] | None) -> None:
        """SIGKILL to the whole process group (uvicorn, or Celery's main process and pool)."""
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def submit(self, params: dict[str, Any], kind: str = "echo") -> int:
        r = httpx.post(
            f"{self.url}/api/v1/jobs",
            json={"kind": kind, "params": params},
            headers=self.headers,
            timeout=30,
        )
        assert r.status_code == 202, r.text
        return int(r.json()["id"])

    # --- the database, read directly --------------------------------------------------------

    def db(self) -> Engine:
        if self.engine is None:
            self.engine = create_engine(self.settings.sqlalchemy_url, pool_pre_ping=True)
        return self.engine

    def jobs(self, ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
        """id -> the job's columns; retried while the database restarts."""
        stmt = select(Job.__table__)
        if ids is not None:
            stmt = stmt.where(Job.id.in_(ids))
        for _ in range(120):
            try:
                with self.db().connect() as conn:
                    return {r.id: dict(r._mapping) for r in conn.execute(stmt)}
            except DBAPIError:
                time.sleep(0.5)
        raise AssertionError("the database did not answer for a minute")

    def job(self, job_id: int) -> dict[str, Any]:
        return self.jobs([job_id])[job_id]

    def stages(self, job_id: int) -> list[dict[str, Any]]:
        with self.db().connect() as conn:
            rows = conn.execute(
                select(JobStage.__table__).where(JobStage.job_id == job_id).order_by(JobStage.id)
            )
            return [dict(r._mapping) for r in rows]

    def wait(
        self, what: str, ready: Callable[[], bool], timeout: float = 120, every: float = 0.1
    ) -> float:
        """Poll until ``ready()``; returns the monotonic time it became true."""
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:.0f} s; logs in {self.logs}")
            time.sleep(every)
        return time.monotonic()

    def wait_ended(self, ids: list[int], timeout: float = 120) -> dict[int, dict[str, Any]]:
        self.wait(
            f"jobs {ids} to end",
            lambda: all(j["state"] in TERMINAL for j in self.jobs(ids).values()),
            timeout,
        )
        return self.jobs(ids)

    def assert_ran_once(self, job_id: int, stages: int) -> dict[str, Any]:
        """Succeeded, with one complete set of stages in its last attempt and none after it."""
        job = self.jobs([job_id])[job_id]
        assert job["state"] == "succeeded", job
        rows = self.stages(job_id)
        last = [s for s in rows if s["attempt"] == job["attempts"]]
        assert [s["name"] for s in last] == [f"step-{i + 1}" for i in range(stages)], rows
        assert all(s["finished_at"] is not None for s in last), rows
        assert max(s["attempt"] for s in rows) == job["attempts"], rows
        return job


@contextmanager
def cluster(kind: str, tmp: Path) -> Iterator[Cluster]:
    env = {**stack_env(kind, tmp / "var"), **FAST}
    settings = prepared(env)
    logs = tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    c = Cluster(kind, env, settings, logs)
    try:
        c.start_api()
        yield c
    finally:
        for proc in (c.api, c.worker):
            if proc is not None:
                stop(proc)
        if c.engine is not None:
            c.engine.dispose()


def service(script: str, command: str) -> None:
    """``scripts/<script>.sh <command>`` with the services' own settings."""
    env = {**os.environ, **SERVICES}
    done = subprocess.run(
        ["bash", f"scripts/{script}.sh", command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- SIGKILL of the API during a burst of submissions ----------------------------------------


@pytest.mark.parametrize("kind", ["embedded", "services"])
def test_api_killed_during_a_submit_burst_loses_no_job(kind: str, tmp_path: Path) -> None:
    """Every committed job ends exactly once. The API is not restarted within a round: the
    worker's supervisor sends what the dead API committed but never sent."""
    with cluster(kind, tmp_path) as c:
        c.start_worker()
        for round_ in range(ROUNDS):
            if round_:
                c.start_api()
            _api_kill_round(c, round_)


def _api_kill_round(c: Cluster, round_: int) -> None:
    accepted: list[int] = []
    refused: list[str] = []
    stop_burst = threading.Event()

    def post(thread: int) -> None:
        n = 0
        with httpx.Client(headers=c.headers, timeout=10) as http:
            while not stop_burst.is_set():
                n += 1
                body = {"kind": "echo", "params": {"message": f"r{round_}-{thread}-{n}"}}
                try:
                    r = http.post(f"{c.url}/api/v1/jobs", json=body)
                except httpx.HTTPError:
                    return  # the API is gone
                if r.status_code != 202:
                    refused.append(f"{r.status_code} {r.text[:200]}")
                    return
                accepted.append(int(r.json()["id"]))

    before = set(c.jobs())
    threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    c.wait("a burst of 40 accepted jobs", lambda: len(accepted) >= 40, timeout=60)
    Cluster.kill(c.api)
    stop_burst.set()
    for t in threads:
        t.join(timeout=30)
    assert refused == []
    committed = sorted(set(c.jobs()) - before)
    assert set(accepted) <= set(committed)
    unsent = [j for j, row in c.jobs(committed).items() if row["dispatched_at"] is None]
    ended = c.wait_ended(committed, timeout=120)
    for job_id, job in ended.items():
        assert job["attempts"] == 1, job
        c.assert_ran_once(job_id, stages=1)
    print(
        f"{c.kind} round {round_ + 1}: {len(committed)} committed, "
        f"{len(committed) - len(accepted)} without an answer, {len(unsent)} unsent at the kill; "
        "all ended once"
    )


# --- SIGKILL of the whole worker mid-job ------------------------------------------------------


@pytest.mark.parametrize("kind", ["embedded", "services"])
def test_worker_killed_mid_job_is_recovered_within_the_reaper_bound(
    kind: str, tmp_path: Path
) -> None:
    with cluster(kind, tmp_path) as c:
        c.start_worker()
        for round_ in range(ROUNDS):
            _worker_kill_round(c, round_)


def _worker_kill_round(c: Cluster, round_: int) -> None:
    job_id = c.submit({"sleep_s": 3, "stages": 3, "message": f"survivor-{round_}"})
    c.wait("the job to run", lambda: c.job(job_id)["state"] == "running")
    time.sleep(0.6)  # mid-stage
    Cluster.kill(c.worker)
    killed_at = time.monotonic()
    c.start_worker()

    def taken_over() -> bool:
        job = c.job(job_id)
        return bool(job["attempts"] >= 2 or job["state"] != "running")

    recovered_at = c.wait(
        "the reaper to take the job from the dead worker",
        taken_over,
        timeout=REAPER_BOUND_S + MARGIN_S + 30,
        every=0.05,
    )
    assert recovered_at - killed_at <= REAPER_BOUND_S + MARGIN_S
    c.wait_ended([job_id])
    job = c.assert_ran_once(job_id, stages=3)
    assert job["attempts"] == 2, job
    assert job["result"]["echo"]["message"] == f"survivor-{round_}"
    print(f"{c.kind} round {round_ + 1}: re-queued {recovered_at - killed_at:.1f} s after the kill")


# --- SIGKILL of train between save and register -----------------------------------------------


def test_train_killed_between_save_and_register_leaves_one_model_and_no_orphan(
    tmp_path: Path,
) -> None:
    with cluster("embedded", tmp_path) as c:
        for round_ in range(ROUNDS):
            _train_kill_round(c, round_)
        with c.db().connect() as conn:
            versions = sorted(r.version for r in conn.execute(select(ModelVersion.version)))
        assert len(versions) == ROUNDS
        models = c.settings.models_dir
        on_disk = sorted(p.name for p in models.iterdir() if p.name != ".claims")
        assert on_disk == versions  # no orphan artifact, no staging directory left


def _train_kill_round(c: Cluster, round_: int) -> None:
    c.start_worker(RECFLOW_JOB_PAUSE_AT="train.after_save")
    data = {"format": "synthetic", "n_users": 150, "n_items": 100, "n_ratings": 4000}
    params = {
        "data": {**data, "seed": round_},
        "model": {"params": {"n_epochs": 3}},
        "activate": "never",
    }
    job_id = c.submit(params, kind="train")
    c.wait(
        "train to reach train.after_save",
        lambda: (c.job(job_id)["message"] or "").startswith("paused at train.after_save"),
    )
    Cluster.kill(c.worker)
    c.start_worker()  # without the pause
    job = c.wait_ended([job_id])[job_id]
    assert job["state"] == "succeeded" and job["attempts"] == 2, job
    with c.db().connect() as conn:
        rows = conn.execute(select(ModelVersion.version).where(ModelVersion.job_id == job_id))
        assert [r.version for r in rows] == [job["result"]["version"]]
    Cluster.kill(c.worker)  # the next round starts a pausing worker


# --- PostgreSQL restarted mid-job, Redis restarted with jobs queued ---------------------------


def test_postgres_restarted_mid_job_every_job_ends_once(tmp_path: Path) -> None:
    with cluster("services", tmp_path) as c:
        c.start_worker()
        try:
            for round_ in range(ROUNDS):
                _postgres_round(c, round_)
        finally:
            service("postgres", "start")  # leave it up, whatever happened


def _postgres_round(c: Cluster, round_: int) -> None:
    ids = [c.submit({"sleep_s": 3, "stages": 3, "message": f"pg-{round_}-{i}"}) for i in range(3)]
    c.wait("a job to run", lambda: any(j["state"] == "running" for j in c.jobs(ids).values()))
    time.sleep(0.5)
    # Down for longer than the heartbeat timeout: when it is back, the reaper may find the live
    # jobs' heartbeats stale and re-queue them; their attempts must then stop, recording nothing.
    service("postgres", "stop")
    time.sleep(4)
    service("postgres", "start")
    ended = c.wait_ended(ids, timeout=150)
    for job_id in ended:
        c.assert_ran_once(job_id, stages=3)
    print(f"round {round_ + 1}: attempts {[j['attempts'] for j in ended.values()]}")


def test_redis_restarted_with_jobs_queued_every_job_ends_once(tmp_path: Path) -> None:
    with cluster("services", tmp_path) as c:
        try:
            for round_ in range(ROUNDS):
                _redis_round(c, round_)
        finally:
            service("redis", "start")  # leave it up, whatever happened


def _redis_round(c: Cluster, round_: int) -> None:
    if c.worker is not None:
        stop(c.worker)  # a clean stop: the jobs below wait in Redis
    ids = [c.submit({"message": f"redis-{round_}-{i}"}) for i in range(5)]
    assert all(j["dispatched_at"] is not None for j in c.jobs(ids).values())
    service("redis", "restart")  # no persistence: the queued messages are gone
    c.start_worker()
    ended = c.wait_ended(ids, timeout=90)
    for job_id, job in ended.items():
        assert job["attempts"] == 1, job
        assert job["dispatches"] >= 2, job  # sent again by a supervisor
        c.assert_ran_once(job_id, stages=1)
