"""Serving benchmark: requests/s and latency of ``GET /api/v1/users/{id}/recommendations``.

Trains the ml-100k SVD model in a temporary data dir on the embedded defaults (SQLite), starts
the real API (uvicorn, 2 worker processes, uvloop + httptools, no access log) on loopback, and
loads it with ``wrk`` (a second process) cycling over the 943 real users, top-10 each, at
concurrency 16, after a short warm-up. In the same run it loads ``bench/serve_ceiling.py``, a
bare FastAPI app that computes the same scores from the same artifact with the same server
settings, as the ceiling this machine allows for that work. ``wrk`` shares the cores with the
server in both cases.

Both servers stay up for the whole run and the measured time of each (``--duration``) is split
into ``--rounds`` slices, alternating API, ceiling, API, ... so that a change in the machine's
other load hits both alike. The slices' latency histograms (1 µs buckets, written by the wrk
script) are merged, so the percentiles are exact over the whole measured time.

In the same run it loads a third server, ``api_experiments``: the same API on a copy of the
database in which an experiment runs with two variants (the trained model and the ``popular``
strategy, 50/50) and impression logging is on (to its landing directory, or to Kafka with
``--kafka``), while the first API logs no impressions. It alternates with the other two.

With a Redis (``--redis URL``, default ``RECFLOW_REDIS_URL`` when set) it loads a fourth server,
``api_precomputed``: the first API's database with ``RECFLOW_SERVING_PRECOMPUTED`` on, after the
``simulate`` job (mode ``precompute``, top-10, ``to_redis``) wrote every user's list into that
Redis under a key prefix of its own (removed at the end). Every request it answers is read from
Redis (checked before measuring). Without a Redis its figures are null.

Prints one JSON line. Figures:

* ``rps``, ``p50_ms``, ``p99_ms``, ``errors`` (non-2xx responses plus socket errors) of the API,
* ``ceiling_rps``, ``ceiling_p50_ms``, ``ceiling_p99_ms``, ``ceiling_errors`` of the bare app,
* ``ratio`` = ``rps / ceiling_rps``,
* ``cpu_us_per_request`` / ``ceiling_cpu_us_per_request``: CPU time (user + system) the server
  processes spent per request while measured, read from ``/proc``; it depends much less on other
  work on the machine than requests/s do, and ``cpu_ratio`` is ceiling / API,
* ``loadavg``: the 1-minute load average when the measurement started (other work on the
  machine depresses the absolute figures),
* ``rps_experiments``, ``p99_ms_experiments``, ``errors_experiments`` of the API with the
  experiment running and impressions logged, ``experiments_ratio`` = ``rps_experiments / rps``,
  ``experiments_cpu_ratio`` = ``cpu_us_per_request`` of the API over that of this server (less
  sensitive to other load on the machine), and ``impressions_logged``: the impression events
  that server wrote (landing directory only; counted after its shutdown flushed the buffer),
* ``rps_precomputed``, ``p50_ms_precomputed``, ``p99_ms_precomputed``, ``errors_precomputed``,
  ``cpu_us_per_request_precomputed`` of the API answering from the precomputed Redis lists, and
  ``precomputed_ratio`` = ``rps_precomputed / rps`` (above 1: reading beats computing here).

Targets: ``rps`` >= 3,000 with ``p99_ms`` <= 10 and no errors; ``ratio`` >= 0.65;
``experiments_ratio`` >= 0.9 with ``p99_ms_experiments`` <= 10 and no errors.

Usage: ``python bench/serve.py [--duration 20] [--connections 16] [--rounds 4] [--skip-ceiling]
[--kafka HOST:PORT] [--redis URL]``.
Needs ``wrk`` (Debian package ``wrk``; installed with apt-get when missing and running as root).
The script is over 400 lines because it stands alone: four servers, wrk, the exact merge of
their histograms and the experiment's setup are one run that prints one line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.cli.stack import free_port, stop, wait_ready  # noqa: E402

ML100K = REPO.parent / "shared" / "data" / "ml-100k"
LUA = REPO / "bench" / "wrk" / "recommendations.lua"
N_USERS = 943
TOP_N = 10
# Settings that would point the run at external services; the benchmark measures the embedded
# defaults, so they are dropped from the environment of this process and of its children.
EXTERNAL = (
    "RECFLOW_DATABASE_URL",
    "RECFLOW_BROKER_URL",
    "RECFLOW_RESULT_BACKEND",
    "RECFLOW_REDIS_URL",
    "RECFLOW_KAFKA_BOOTSTRAP_SERVERS",
    "RECFLOW_ENV",
    "RECFLOW_API_KEY",
)


class BenchError(RuntimeError):
    """A failure that the person running the benchmark can act on."""


@dataclass
class Load:
    """What wrk measured against one server, summed over slices."""

    seconds: float = 0.0
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    cpu_s: float | None = 0.0
    latency_us: Counter[int] = field(default_factory=Counter)

    def add(self, other: Load) -> None:
        self.seconds += other.seconds
        self.requests += other.requests
        self.non_2xx += other.non_2xx
        self.socket_errors += other.socket_errors
        self.cpu_s = None if self.cpu_s is None or other.cpu_s is None else self.cpu_s + other.cpu_s
        self.latency_us.update(other.latency_us)

    def percentile_ms(self, q: float) -> float | None:
        """The smallest recorded latency with at least ``q`` of all latencies at or below it."""
        total = sum(self.latency_us.values())
        if not total:
            return None
        seen = 0
        for value, count in sorted(self.latency_us.items()):
            seen += count
            if seen >= q * total:
                return round(value / 1000, 3)
        return None

    def figures(self) -> dict[str, Any]:
        total = sum(self.latency_us.values())
        mean = sum(v * c for v, c in self.latency_us.items()) / total / 1000 if total else None
        return {
            "rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": self.percentile_ms(0.50),
            "p90_ms": self.percentile_ms(0.90),
            "p99_ms": self.percentile_ms(0.99),
            "mean_ms": round(mean, 3) if mean is not None else None,
            "errors": self.non_2xx + self.socket_errors,
            "non_2xx": self.non_2xx,
            "socket_errors": self.socket_errors,
            "requests": self.requests,
            "cpu_us_per_request": (
                round(self.cpu_s / self.requests * 1e6, 1)
                if self.cpu_s is not None and self.requests
                else None
            ),
        }


def parse_wrk(output: str) -> Load:
    """The SUMMARY and LAT lines that ``bench/wrk/recommendations.lua`` prints when wrk ends."""
    summary = re.search(r"^SUMMARY (.*)$", output, re.M)
    if summary is None:
        raise BenchError(f"wrk printed no SUMMARY line (is the Lua script {LUA} used?):\n{output}")
    s = {k: int(v) for k, v in (kv.split("=") for kv in summary.group(1).split())}
    latency = Counter({int(v): int(c) for v, c in re.findall(r"^LAT (\d+) (\d+)$", output, re.M)})
    return Load(
        seconds=s["duration_us"] / 1e6,
        requests=s["requests"],
        non_2xx=s["status"],
        socket_errors=s["connect"] + s["read"] + s["write"] + s["timeout"],
        latency_us=latency,
    )


def _ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BenchError(
            "wrk is not installed; install it with `sudo apt-get install wrk` and run again"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(
                f"`{' '.join(cmd)}` failed ({done.returncode}); install wrk by hand: "
                f"{done.stderr.strip()[-400:]}"
            )
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get installed no `wrk` binary; install wrk by hand")
    return found


def _group_cpu_s(pgid: int) -> float | None:
    """CPU seconds (user + system) used so far by the live processes of process group ``pgid``.

    Read from ``/proc``; ``None`` where there is no ``/proc``.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    ticks = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # Fields after the parenthesised command name: state ppid pgrp ... utime(11) stime(12).
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    body_bytes: int = 0
    load: Load = field(default_factory=Load)


def _spawn(name: str, args: list[str], env: dict[str, str], logs: Path) -> Server:
    port = free_port()
    log = logs / f"{name}.log"
    out = log.open("ab")
    # A new session per server, so stop() ends its whole process group (uvicorn's workers too).
    proc = subprocess.Popen(
        [*args, "--port", str(port)],
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    return Server(name=name, url=f"http://127.0.0.1:{port}", proc=proc, log=log)


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait_answer(
    server: Server,
    timeout: float = 60,
    experiment: str | None = None,
    source: str | None = None,
) -> int:
    """Wait until the recommendation endpoint answers 200 (in ``experiment`` when given, from
    ``source`` when given); returns the body size in bytes."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(
                f"the {server.name} server exited early with code {server.proc.returncode}\n"
                f"--- {server.log} ---\n{_tail(server.log)}"
            )
        try:
            r = httpx.get(
                f"{server.url}/api/v1/users/1/recommendations", params={"n": TOP_N}, timeout=5
            )
            if (
                r.status_code == 200
                and len(r.json()["items"]) == TOP_N
                and r.json().get("experiment") == experiment
                and source in (None, r.json().get("source"))
            ):
                return len(r.content)
            last = f"{r.status_code} {r.text[:300]}"
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise BenchError(
        f"no 200 from the {server.name} recommendation endpoint within {timeout:.0f} s: {last}\n"
        f"--- {server.log} ---\n{_tail(server.log)}"
    )


def _wrk(wrk: str, server: Server, args: argparse.Namespace, seconds: int) -> Load:
    cmd = [
        wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency",
        "--timeout", "5s", "-s", str(LUA), server.url, "--", str(N_USERS), str(TOP_N),
    ]  # fmt: skip
    cpu0 = _group_cpu_s(server.proc.pid)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    cpu1 = _group_cpu_s(server.proc.pid)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:\n{text}")
    load = parse_wrk(text)
    load.cpu_s = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return load


def _train() -> tuple[Path, str]:
    from backend.cli.inline import run_inline

    job = run_inline(
        "train",
        {
            "data": {"format": "ml-100k", "path": str(ML100K)},
            "items": {"format": "ml-100k", "path": str(ML100K)},
            "activate": "always",
        },
        quiet=True,
    )
    if job["state"] != "succeeded":
        raise BenchError(f"training failed: {job.get('error')}")
    from backend.config import get_settings

    # The result's path is relative to the data dir.
    return get_settings().data_dir / job["result"]["path"], str(job["result"]["version"])


EXPERIMENT = "bench"


def _experiment_db(tmp: Path, version: str) -> Path:
    """A data dir whose database is a copy of ``tmp``'s with experiment ``bench`` running: the
    trained ``version`` against the ``popular`` strategy, 50/50."""
    from backend.config import Settings
    from backend.db.session import session_scope
    from backend.experiments import definitions
    from backend.experiments.schemas import ExperimentIn, VariantIn

    data = tmp / "experiments"
    data.mkdir()
    for f in tmp.glob("recflow.db*"):  # no server has it open yet: the copy is consistent
        shutil.copy2(f, data / f.name)
    url = Settings(data_dir=data).sqlalchemy_url
    body = ExperimentIn(
        name=EXPERIMENT,
        description="the trained model against the popularity list",
        variants=[
            VariantIn(name="model", weight=50, model_version=version),
            VariantIn(name="popular", weight=50, strategy="popular"),
        ],
    )
    with session_scope(url) as s:
        definitions.create(s, body)
        definitions.start(s, EXPERIMENT)
    return data


def _precompute(redis_url: str, prefix: str) -> None:
    """Every user's top-10 of the active model into Redis, by the ``simulate`` job."""
    from backend.cli.inline import run_inline
    from backend.config import get_settings

    os.environ.update(RECFLOW_REDIS_URL=redis_url, RECFLOW_TOPN_KEY_PREFIX=prefix)
    get_settings.cache_clear()
    try:
        job = run_inline(
            "simulate", {"mode": "precompute", "n": TOP_N, "to_redis": True}, quiet=True
        )
    finally:
        for name in ("RECFLOW_REDIS_URL", "RECFLOW_TOPN_KEY_PREFIX"):
            os.environ.pop(name, None)
        get_settings.cache_clear()
    if job["state"] != "succeeded":
        raise BenchError(f"precompute into {redis_url} failed: {job.get('error')}")


def _drop_keys(redis_url: str, prefix: str) -> None:
    import redis

    with contextlib.suppress(redis.RedisError):
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])


def _impressions_logged(landing: Path) -> int:
    return sum(
        f.read_bytes().count(b"\n") for f in landing.glob("impressions-*.jsonl") if f.is_file()
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    wrk = _ensure_wrk()
    uvicorn = [
        sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--workers", str(args.workers),
        "--log-level", "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools",
    ]  # fmt: skip
    slice_s = max(1, round(args.duration / args.rounds))
    prefix = f"recflow:bench-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="recflow-bench-serve-") as tmp:
        for name in EXTERNAL:
            os.environ.pop(name, None)
        os.environ["RECFLOW_DATA_DIR"] = tmp
        # The training job may read MovieLens from the shared data dir (an allowed root).
        os.environ["RECFLOW_DATA_ROOTS"] = str(ML100K.resolve())
        artifact, version = _train()
        exp_data = _experiment_db(Path(tmp), version)
        if args.redis:
            _precompute(args.redis, prefix)
        env = {**os.environ, "RECFLOW_IMPRESSIONS_ENABLED": "false"}
        exp_env = {
            **os.environ,
            "RECFLOW_DATA_DIR": str(exp_data),
            "RECFLOW_IMPRESSIONS_ENABLED": "true",
            **({"RECFLOW_KAFKA_BOOTSTRAP_SERVERS": args.kafka} if args.kafka else {}),
        }
        logs = Path(tmp) / "logs"
        logs.mkdir()

        bench = str(REPO / "bench")
        servers: list[Server] = []
        try:
            app = ["backend.api.app:create_app", "--factory"]
            api = _spawn("api", [*uvicorn, *app], env, logs)
            servers.append(api)
            if not args.skip_ceiling:
                servers.append(
                    _spawn(
                        "ceiling",
                        [*uvicorn, "serve_ceiling:create_app", "--factory", "--app-dir", bench],
                        {**env, "BENCH_CEILING_ARTIFACT": str(artifact)},
                        logs,
                    )
                )
            exp = _spawn(
                "api_experiments",
                [*uvicorn, "backend.api.app:create_app", "--factory"],
                exp_env,
                logs,
            )
            servers.append(exp)
            pre = None
            if args.redis:
                pre_env = {
                    **env,
                    "RECFLOW_REDIS_URL": args.redis,
                    "RECFLOW_TOPN_KEY_PREFIX": prefix,
                    "RECFLOW_SERVING_PRECOMPUTED": "true",
                }
                pre = _spawn("api_precomputed", [*uvicorn, *app], pre_env, logs)
                servers.append(pre)
            for ready in (api, exp, *([pre] if pre else [])):
                try:
                    wait_ready(ready.url, [ready.proc])
                except RuntimeError as exc:
                    raise BenchError(f"{exc}\n--- {ready.log} ---\n{_tail(ready.log)}") from None
            for s in servers:
                source = "precomputed" if s is pre else "computed"
                s.body_bytes = _wait_answer(
                    s,
                    experiment=EXPERIMENT if s is exp else None,
                    source=None if s.name == "ceiling" else source,  # the bare app says nothing
                )
            for s in servers:
                _wrk(wrk, s, args, max(1, round(args.warmup)))
            load_avg = os.getloadavg()[0]
            for _ in range(args.rounds):
                for s in servers:
                    s.load.add(_wrk(wrk, s, args, slice_s))
        finally:
            for s in servers:
                stop(s.proc)
            if args.redis:
                _drop_keys(args.redis, prefix)
        logged = None if args.kafka else _impressions_logged(exp_data / "landing")

    a = api.load.figures()
    c = servers[1].load.figures() if not args.skip_ceiling else None
    x = exp.load.figures()
    p = pre.load.figures() if pre is not None else None
    return {
        "bench": "serve",
        "endpoint": f"GET /api/v1/users/{{id}}/recommendations?n={TOP_N}",
        "rps": a["rps"],
        "p50_ms": a["p50_ms"],
        "p99_ms": a["p99_ms"],
        "errors": a["errors"],
        "ceiling_rps": c["rps"] if c else None,
        "ceiling_p50_ms": c["p50_ms"] if c else None,
        "ceiling_p99_ms": c["p99_ms"] if c else None,
        "ceiling_errors": c["errors"] if c else None,
        "ratio": round(a["rps"] / c["rps"], 3) if c and c["rps"] else None,
        "p90_ms": a["p90_ms"],
        "mean_ms": a["mean_ms"],
        "non_2xx": a["non_2xx"],
        "socket_errors": a["socket_errors"],
        "requests": a["requests"],
        "ceiling_requests": c["requests"] if c else None,
        "cpu_us_per_request": a["cpu_us_per_request"],
        "ceiling_cpu_us_per_request": c["cpu_us_per_request"] if c else None,
        "cpu_ratio": (
            round(c["cpu_us_per_request"] / a["cpu_us_per_request"], 3)
            if c and c["cpu_us_per_request"] and a["cpu_us_per_request"]
            else None
        ),
        "body_bytes": api.body_bytes,
        "ceiling_body_bytes": servers[1].body_bytes if c else None,
        "rps_experiments": x["rps"],
        "p50_ms_experiments": x["p50_ms"],
        "p99_ms_experiments": x["p99_ms"],
        "errors_experiments": x["errors"],
        "requests_experiments": x["requests"],
        "cpu_us_per_request_experiments": x["cpu_us_per_request"],
        "experiments_ratio": round(x["rps"] / a["rps"], 3) if a["rps"] else None,
        "experiments_cpu_ratio": (
            round(a["cpu_us_per_request"] / x["cpu_us_per_request"], 3)
            if a["cpu_us_per_request"] and x["cpu_us_per_request"]
            else None
        ),
        "rps_precomputed": p["rps"] if p else None,
        "p50_ms_precomputed": p["p50_ms"] if p else None,
        "p99_ms_precomputed": p["p99_ms"] if p else None,
        "errors_precomputed": p["errors"] if p else None,
        "requests_precomputed": p["requests"] if p else None,
        "cpu_us_per_request_precomputed": p["cpu_us_per_request"] if p else None,
        "precomputed_ratio": round(p["rps"] / a["rps"], 3) if p and a["rps"] else None,
        "impressions_to": f"kafka://{args.kafka}" if args.kafka else "landing dir",
        "impressions_logged": logged,
        "concurrency": args.connections,
        "wrk_threads": args.threads,
        "duration_s": slice_s * args.rounds,
        "rounds": args.rounds,
        "warmup_s": max(1, round(args.warmup)),
        "api_workers": args.workers,
        "model": "svd ml-100k (943 users x 1682 items x 100 factors)",
        "loadavg": round(load_avg, 2),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=20, help="measured seconds per server")
    ap.add_argument("--rounds", type=int, default=4, help="alternating slices per server")
    ap.add_argument("--warmup", type=float, default=3, help="unmeasured seconds per server")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections (concurrency)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--skip-ceiling", action="store_true", help="do not run the bare-app ceiling")
    ap.add_argument(
        "--kafka",
        default="",
        metavar="HOST:PORT",
        help="send the experiments server's impressions to this Kafka (default: landing dir)",
    )
    ap.add_argument(
        "--redis",
        default=os.environ.get("RECFLOW_REDIS_URL", ""),
        metavar="URL",
        help="Redis for the precomputed-lists server (default: RECFLOW_REDIS_URL; none: skipped)",
    )
    args = ap.parse_args()
    if args.threads > args.connections:
        ap.error("--threads must not exceed --connections (wrk needs a connection per thread)")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    if not (ML100K / "u.data").is_file():
        print(json.dumps({"bench": "serve", "skipped": f"MovieLens 100K not found at {ML100K}"}))
        return

    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so every server started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        print(json.dumps(run(args)))
    except BenchError as exc:
        sys.exit(f"bench/serve.py: {exc}")


if __name__ == "__main__":
    main()
