"""Jobs through a real queue and a real Celery worker process, on both stacks."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.cli.stack import Stack

pytestmark = pytest.mark.integration


def submit(st: Stack, params: dict[str, Any], kind: str = "echo") -> dict[str, Any]:
    body = {"kind": kind, "params": params}
    r = httpx.post(f"{st.api_url}/api/v1/jobs", json=body, headers=st.headers, timeout=10)
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    return job


def poll(st: Stack, job_id: int, until: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = httpx.get(
            f"{st.api_url}/api/v1/jobs/{job_id}", headers=st.headers, timeout=10
        ).json()
        if job["state"] in until:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} stuck in {job['state']}: {job}")
        time.sleep(0.05)


def test_job_runs_on_the_worker_and_records_its_stages(stack: Stack) -> None:
    job = submit(stack, {"message": "hi", "sleep_s": 0.3, "stages": 3})
    done = poll(stack, job["id"], ("succeeded", "failed"))
    assert done["state"] == "succeeded", done
    assert done["result"] == {"echo": {"message": "hi", "sleep_s": 0.3, "stages": 3, "fail": False}}
    assert [s["name"] for s in done["stages"]] == ["step-1", "step-2", "step-3"]
    assert all(s["duration_s"] >= 0.09 for s in done["stages"])
    assert done["progress"] == 1.0 and done["attempts"] == 1
    assert done["started_at"] >= done["created_at"] and done["finished_at"] >= done["started_at"]


def test_running_state_and_progress_are_visible(stack: Stack) -> None:
    job = submit(stack, {"sleep_s": 2.0, "stages": 4})
    running = poll(stack, job["id"], ("running",))
    assert running["started_at"] is not None
    mid = poll(stack, job["id"], ("succeeded",))
    assert mid["progress"] == 1.0


def test_failure_is_recorded_with_the_error(stack: Stack) -> None:
    job = submit(stack, {"fail": True})
    done = poll(stack, job["id"], ("succeeded", "failed"))
    assert done["state"] == "failed"
    assert done["error"] == "RuntimeError: echo was asked to fail (params.fail=true)"
    assert done["result"] is None


def test_cancel_a_running_job(stack: Stack) -> None:
    job = submit(stack, {"sleep_s": 60})
    poll(stack, job["id"], ("running",))
    r = httpx.post(
        f"{stack.api_url}/api/v1/jobs/{job['id']}/cancel", headers=stack.headers, timeout=10
    )
    assert r.status_code == 200 and r.json()["cancel_requested"] is True
    done = poll(stack, job["id"], ("cancelled", "succeeded", "failed"), timeout=15)
    assert done["state"] == "cancelled" and done["result"] is None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def test_job_survives_kill_9_of_its_worker_process(stack: Stack) -> None:
    job = submit(stack, {"sleep_s": 3, "stages": 3, "message": "survivor"})
    running = poll(stack, job["id"], ("running",))
    time.sleep(0.3)
    # The job row names the pool process that runs it: kill exactly that one.
    pid = int(running["worker"].rsplit(":", 1)[1])
    assert pid in _children(stack.worker.pid), "the job does not run in this worker's pool"
    os.kill(pid, signal.SIGKILL)
    done = poll(stack, job["id"], ("succeeded", "failed"), timeout=90)
    assert done["state"] == "succeeded", done
    assert done["attempts"] == 2
    assert done["result"]["echo"]["message"] == "survivor"
    assert [s["attempt"] for s in done["stages"]] == [2, 2, 2]
    listing = httpx.get(
        f"{stack.api_url}/api/v1/jobs", params={"limit": 200}, headers=stack.headers
    ).json()["items"]
    assert sum(1 for j in listing if j["id"] == job["id"]) == 1
