"""Soak benchmark: mixed traffic on PostgreSQL + Redis while workers die and the API restarts.

Starts the real API (uvicorn, 2 processes) and a Celery worker (2 processes) on PostgreSQL and
Redis (the addresses of ``scripts/services.sh env``), with an API key, trains a model (MovieLens
100K when ``../shared`` has it, else a seeded synthetic set) and activates it, then for
``--duration`` seconds sends, from this process:

* recommendations at a fixed rate (``--rps``, open loop: a request is due every 1/rps seconds
  whatever the previous one did, spread over a few client threads),
* job submissions (``echo`` jobs of 3 stages sleeping 0.2-2 s, half a job a second, well within
  what 2 worker processes run, each with an Idempotency-Key,
  retried with the same key when the API does not answer),
* monitoring reads (a job, the job list, the model list, readiness, Prometheus metrics),

while the whole worker (main process and pool, its process group) is killed with SIGKILL every
``--kill-every`` seconds and started again, and the API is stopped and started once half way.
Afterwards it waits for every submitted job to end (at most the reaper's bound plus a margin)
and reads the job rows and their stages back from SQL.

Prints one JSON line:

* ``requests``: HTTP requests that got an answer; ``server_errors``: answers with a 5xx status
  (a request refused while the API is restarting is a ``connection_error``, counted apart);
* ``jobs_submitted``: jobs the API acknowledged (201/202/200 with an id);
* ``jobs_lost``: acknowledged jobs that did not end (or whose row is missing);
* ``jobs_duplicated``: jobs that ran to completion more than once (more than one attempt that
  finished all its stages) or have more than one row for one Idempotency-Key;
* ``p99_ms`` (and ``p50_ms``): latency of the recommendation requests that were answered, over
  the whole run, faults included.

Targets: 0 server errors, 0 jobs lost, 0 duplicated, ``p99_ms`` at most 25.

Usage::

    bash scripts/services.sh up && eval "$(bash scripts/services.sh env)"
    .venv/bin/python bench/soak.py [--duration 600] [--rps 100] [--kill-every 60]

The database named by ``RECFLOW_TEST_DATABASE_URL`` (else ``RECFLOW_DATABASE_URL``) is reset, and
Redis databases 11-13 are flushed: point it at a scratch database.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.cli.stack import free_port, stop, wait_ready, worker_command  # noqa: E402

ML100K = REPO.parent / "shared" / "data" / "ml-100k"
TERMINAL = {"succeeded", "failed", "cancelled"}


class BenchError(RuntimeError):
    """A failure that the person running the benchmark can act on."""


@dataclass
class Tally:
    """What the traffic threads saw; guarded by one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    server_errors: int = 0
    client_errors: int = 0
    connection_errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    rec_ms: list[float] = field(default_factory=list)
    rec_late: int = 0
    jobs: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> job id

    def answered(self, r: httpx.Response, what: str) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[r.status_code] += 1
            if r.status_code >= 500:
                self.server_errors += 1
                if len(self.error_samples) < 10:
                    self.error_samples.append(f"{what}: {r.status_code} {r.text[:200]}")
            elif r.status_code >= 400:
                self.client_errors += 1
                if len(self.error_samples) < 10:
                    self.error_samples.append(f"{what}: {r.status_code} {r.text[:200]}")

    def unanswered(self) -> None:
        with self.lock:
            self.connection_errors += 1


class Api:
    """The API process group, restartable on the same port."""

    def __init__(self, env: dict[str, str], logs: Path, workers: int) -> None:
        self.env, self.logs, self.workers = env, logs, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = (self.logs / "api.log").open("ab")
        cmd = [
            sys.executable, "-m", "uvicorn", "backend.api.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        wait_ready(self.url, [self.proc], timeout=90)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


class Worker:
    """The Celery worker's process group; killed with SIGKILL and started again."""

    def __init__(self, env: dict[str, str], logs: Path, concurrency: int) -> None:
        self.env, self.logs, self.concurrency = env, logs, concurrency
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        out = (self.logs / "worker.log").open("ab")
        self.proc = subprocess.Popen(
            worker_command(self.concurrency, loglevel="WARNING"),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.kills += 1

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def _env(tmp: Path, key: str) -> dict[str, str]:
    database = os.environ.get("RECFLOW_TEST_DATABASE_URL") or os.environ.get("RECFLOW_DATABASE_URL")
    broker = os.environ.get("RECFLOW_BROKER_URL", "")
    if not database or not database.startswith("postgresql") or not broker.startswith("redis"):
        raise BenchError(
            "the soak runs on PostgreSQL and Redis: start them with `bash scripts/services.sh up` "
            'and `eval "$(bash scripts/services.sh env)"`'
        )
    redis = broker.rsplit("/", 1)[0]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RECFLOW_") or k == "RECFLOW_DATA_ROOTS"
    }
    env.update(
        RECFLOW_ENV="production",
        RECFLOW_DATA_DIR=str(tmp),
        RECFLOW_DATABASE_URL=database,
        RECFLOW_BROKER_URL=f"{redis}/11",
        RECFLOW_RESULT_BACKEND=f"{redis}/12",
        RECFLOW_REDIS_URL=f"{redis}/13",
        RECFLOW_API_KEY=key,
    )
    roots = [str(ML100K.resolve())] if (ML100K / "u.data").is_file() else []
    if env.get("RECFLOW_DATA_ROOTS"):
        roots.append(env["RECFLOW_DATA_ROOTS"])
    if roots:
        env["RECFLOW_DATA_ROOTS"] = os.pathsep.join(roots)
    return env


def _prepare(env: dict[str, str]) -> list[str]:
    """Reset the database and brokers, train and activate a model; return users to ask for."""
    import redis

    from backend.config import Settings
    from backend.db.migrate import reset

    fields = {k.removeprefix("RECFLOW_").lower(): v for k, v in env.items() if k[:8] == "RECFLOW_"}
    settings = Settings(**fields)  # type: ignore[arg-type]
    for url in (settings.celery_broker_url, settings.celery_result_backend, settings.redis_url):
        redis.Redis.from_url(url).flushdb()
    reset(settings.sqlalchemy_url)
    if (ML100K / "u.data").is_file():
        data: dict[str, Any] = {"format": "ml-100k", "path": str(ML100K.resolve())}
        users = [str(u) for u in range(1, 944)]
    else:
        data = {"format": "synthetic", "n_users": 1000, "n_items": 500, "n_ratings": 50_000}
        users = [f"u{u}" for u in range(1000)]
    code = (
        "import json, sys\n"
        "from backend.cli.inline import run_inline\n"
        "job = run_inline('train', json.loads(sys.argv[1]), quiet=True)\n"
        "sys.exit(0 if job['state'] == 'succeeded' else job.get('error') or 'training failed')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps({"data": data, "activate": "always"})],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"training the model failed: {(done.stderr or done.stdout)[-800:]}")
    return users


def _recommendations(
    api: Api, key: str, users: list[str], rps: float, until: float, tally: Tally, seed: int
) -> None:
    rng = random.Random(seed)
    period = 1.0 / rps
    due = time.monotonic()
    with httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=5) as http:
        while True:
            now = time.monotonic()
            if now >= until:
                return
            if due > now:
                time.sleep(due - now)
            elif now - due > 1.0:
                # More than a second behind (the API restarting): skip, do not burst.
                with tally.lock:
                    tally.rec_late += int((now - due) / period)
                due = now
            due += period
            user = rng.choice(users)
            t0 = time.perf_counter()
            try:
                r = http.get(f"/api/v1/users/{user}/recommendations", params={"n": 10})
            except httpx.HTTPError:
                tally.unanswered()
                continue
            ms = (time.perf_counter() - t0) * 1000
            tally.answered(r, "recommendations")
            if r.status_code == 200:
                with tally.lock:
                    tally.rec_ms.append(ms)


def _jobs(api: Api, key: str, per_s: float, until: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=10) as http:
        while time.monotonic() < until:
            idem = uuid.uuid4().hex
            sleep_s = round(rng.uniform(0.2, 2.0), 2)
            params = {"kind": "echo", "params": {"sleep_s": sleep_s, "stages": 3}}
            # Retry with the same key until the API answers: the key makes the retry safe.
            while time.monotonic() < until + 120:
                try:
                    r = http.post("/api/v1/jobs", json=params, headers={"Idempotency-Key": idem})
                except httpx.HTTPError:
                    tally.unanswered()
                    time.sleep(0.5)
                    continue
                tally.answered(r, "submit")
                if r.status_code in (200, 201, 202):
                    job_id = int(r.json()["id"])
                    with tally.lock:
                        tally.jobs[idem] = job_id
                    break
                if r.status_code < 500:
                    break
                time.sleep(0.5)
            time.sleep(rng.expovariate(per_s))


def _reads(api: Api, key: str, until: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=10) as http:
        while time.monotonic() < until:
            with tally.lock:
                ids = list(tally.jobs.values())
            paths = ["/api/v1/jobs?limit=20", "/api/v1/models", "/health/ready", "/metrics"]
            if ids:
                paths.append(f"/api/v1/jobs/{rng.choice(ids)}")
            path = rng.choice(paths)
            try:
                r = http.get(path)
            except httpx.HTTPError:
                tally.unanswered()
            else:
                tally.answered(r, path)
            time.sleep(0.2)


def _wait_jobs(api: Api, key: str, ids: list[int], timeout: float) -> dict[int, str]:
    """Poll until every job has ended or ``timeout`` passes; return the last state of each."""
    deadline = time.monotonic() + timeout
    states: dict[int, str] = {}
    with httpx.Client(base_url=api.url, headers={"X-API-Key": key}, timeout=10) as http:
        pending = list(ids)
        while pending and time.monotonic() < deadline:
            still = []
            for job_id in pending:
                try:
                    r = http.get(f"/api/v1/jobs/{job_id}")
                    state = r.json().get("state", "missing") if r.status_code == 200 else "missing"
                except httpx.HTTPError:
                    state = "unknown"
                states[job_id] = state
                if state not in TERMINAL:
                    still.append(job_id)
            pending = still
            if pending:
                time.sleep(1)
    return states


def _duplicated(database_url: str, ids: list[int]) -> int:
    """Jobs with more than one attempt that finished all of its stages."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT job_id, attempt, count(*) FILTER (WHERE finished_at IS NOT NULL) "
                "FROM job_stages GROUP BY job_id, attempt"
            )
        ).all()
    engine.dispose()
    wanted = set(ids)
    complete: Counter[int] = Counter()
    for job_id, _attempt, finished in rows:
        if job_id in wanted and finished >= 3:
            complete[job_id] += 1
    return sum(1 for n in complete.values() if n > 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="recflow-bench-soak-") as tmp_name:
        tmp = Path(tmp_name)
        logs = tmp / "logs"
        logs.mkdir()
        env = _env(tmp, key)
        users = _prepare(env)
        api = Api(env, logs, args.api_workers)
        worker = Worker(env, logs, args.concurrency)
        tally = Tally()
        api_restarts = 0
        try:
            worker.start()
            api.start()
            load_avg = os.getloadavg()[0]
            start = time.monotonic()
            until = start + args.duration
            threads = [
                threading.Thread(
                    target=_recommendations,
                    args=(api, key, users, args.rps / args.rec_threads, until, tally, i),
                    daemon=True,
                )
                for i in range(args.rec_threads)
            ]
            threads.append(
                threading.Thread(
                    target=_jobs, args=(api, key, args.jobs_per_s, until, tally, 100), daemon=True
                )
            )
            threads.append(
                threading.Thread(target=_reads, args=(api, key, until, tally, 200), daemon=True)
            )
            for t in threads:
                t.start()
            next_kill = start + args.kill_every
            restart_at = start + args.duration / 2
            restarted = False
            while time.monotonic() < until:
                now = time.monotonic()
                if now >= next_kill:
                    worker.kill()
                    worker.start()
                    next_kill += args.kill_every
                if not restarted and now >= restart_at:
                    api.stop()
                    api.start()
                    api_restarts += 1
                    restarted = True
                time.sleep(0.2)
            for t in threads:
                t.join(timeout=180)
            ids = sorted(set(tally.jobs.values()))
            states = _wait_jobs(api, key, ids, args.drain_s)
            duplicated = _duplicated(env["RECFLOW_DATABASE_URL"], ids)
        finally:
            api.stop()
            worker.stop()

    rec = sorted(tally.rec_ms)
    lost = sum(1 for s in states.values() if s not in TERMINAL)
    by_state = Counter(states.values())
    return {
        "bench": "soak",
        "requests": tally.requests,
        "server_errors": tally.server_errors,
        "jobs_submitted": len(ids),
        "jobs_lost": lost,
        "jobs_duplicated": duplicated,
        "p99_ms": round(rec[min(len(rec) - 1, int(0.99 * len(rec)))], 2) if rec else None,
        "p50_ms": round(statistics.median(rec), 2) if rec else None,
        "recommendations": len(rec),
        "recommendations_skipped_while_down": tally.rec_late,
        "client_errors": tally.client_errors,
        "connection_errors": tally.connection_errors,
        "jobs_by_state": dict(by_state),
        "worker_kills": worker.kills,
        "api_restarts": api_restarts,
        "error_samples": tally.error_samples,
        "duration_s": args.duration,
        "target_rps": args.rps,
        "loadavg": round(load_avg, 2),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600, help="seconds of traffic")
    ap.add_argument("--rps", type=float, default=100, help="recommendation requests per second")
    ap.add_argument("--rec-threads", type=int, default=4, help="client threads for them")
    ap.add_argument("--jobs-per-s", type=float, default=0.5, help="job submissions per second")
    ap.add_argument("--kill-every", type=float, default=60, help="SIGKILL the worker this often")
    ap.add_argument(
        "--drain-s",
        type=float,
        default=420,
        help="wait at most this long for the jobs to end (the reaper's bound, 45 s, plus the "
        "re-dispatch bound, 300 s, for a message a killed worker had reserved, plus a margin)",
    )
    ap.add_argument("--api-workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=2, help="worker pool processes")
    args = ap.parse_args()
    if args.duration <= 0 or args.rps <= 0 or args.kill_every <= 0:
        ap.error("--duration, --rps and --kill-every must be positive")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        print(json.dumps(run(args)))
    except BenchError as exc:
        sys.exit(f"bench/soak.py: {exc}")


if __name__ == "__main__":
    main()
