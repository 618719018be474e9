"""Job platform benchmark: submit-to-start latency and no-op job throughput, end to end.

Starts the API (uvicorn) and one Celery worker with 2 processes on the configured stack (the
real services when RECFLOW_BROKER_URL etc. are set, as after `eval "$(scripts/services.sh env)"`).
Two phases, both over HTTP, reading the server-side timestamps back from the job rows:
- latency: no-op jobs submitted one at a time at a steady pace below capacity; submit-to-start
  is ``started_at - created_at`` (row committed -> worker marked it running);
- throughput: N no-op jobs submitted at once from 4 client threads; jobs per second is N over
  the time from the first submission to the last job's end.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.cli.stack import running_stack
from backend.config import Settings
from backend.db.migrate import reset


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=400, help="no-op jobs to submit")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--clients", type=int, default=4, help="concurrent submitting threads")
    ap.add_argument("--latency-jobs", type=int, default=100, help="paced jobs for latency")
    ap.add_argument("--pace-s", type=float, default=0.05, help="gap between paced submissions")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="recflow-bench-") as tmp:
        env = {"RECFLOW_DATA_DIR": tmp}
        os.environ.update(env)
        settings = Settings()
        reset(settings.sqlalchemy_url)
        with running_stack(Path("var/logs/bench-jobs"), worker_concurrency=2, env=env) as st:
            http = httpx.Client(base_url=st.api_url, timeout=30)

            def submit(_: int) -> int:
                r = http.post("/api/v1/jobs", json={"kind": "echo", "params": {}})
                r.raise_for_status()
                return int(r.json()["id"])

            def wait_all(ids: list[int]) -> list[dict[str, object]]:
                out = []
                for job_id in ids:
                    while True:
                        job = http.get(f"/api/v1/jobs/{job_id}").json()
                        if job["state"] in ("succeeded", "failed", "cancelled"):
                            out.append(job)
                            break
                        time.sleep(0.02)
                return out

            wait_all([submit(i) for i in range(args.warmup)])
            paced = []
            for i in range(args.latency_jobs):
                paced.append(submit(i))
                time.sleep(args.pace_s)
            paced_jobs = wait_all(paced)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                ids = list(pool.map(submit, range(args.jobs)))
            submit_s = time.perf_counter() - t0
            jobs = wait_all(ids)
            wall_s = time.perf_counter() - t0

    failed = sum(1 for j in [*jobs, *paced_jobs] if j["state"] != "succeeded")
    lat_ms = [(_ts(str(j["started_at"])) - _ts(str(j["created_at"]))) * 1000 for j in paced_jobs]
    burst_ms = [(_ts(str(j["started_at"])) - _ts(str(j["created_at"]))) * 1000 for j in jobs]
    first = min(_ts(str(j["created_at"])) for j in jobs)
    last = max(_ts(str(j["finished_at"])) for j in jobs)
    print(
        json.dumps(
            {
                "bench": "jobs",
                "broker": settings.celery_broker_url.split("://")[0],
                "database": settings.sqlalchemy_url.split(":")[0],
                "jobs": args.jobs,
                "latency_jobs": args.latency_jobs,
                "worker_processes": 2,
                "submit_to_start_p50_ms": round(statistics.median(lat_ms), 2),
                "submit_to_start_p99_ms": round(_pct(lat_ms, 0.99), 2),
                "jobs_per_s": round(args.jobs / (last - first), 1),
                "burst_submit_to_start_p50_ms": round(statistics.median(burst_ms), 1),
                "client_wall_jobs_per_s": round(args.jobs / wall_s, 1),
                "submit_rps": round(args.jobs / submit_s, 1),
                "failed": failed,
                "machine": f"{platform.machine()} {os.cpu_count()} cores",
            }
        )
    )


if __name__ == "__main__":
    main()
