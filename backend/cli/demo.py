"""``recflow demo``: the main job end to end on whatever the settings point at.

With nothing configured that is the embedded stack: SQLite, the SQLite Celery broker, local
Spark and the landing directory. It starts the API and a worker, drives everything through the
REST API as a user would, and prints what each job did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer

from backend.cli.client import ApiClient
from backend.cli.jobs import print_job, watch
from backend.cli.output import console, fail
from backend.cli.stack import running_stack
from backend.config import get_settings

Step = Callable[[ApiClient], None]


def _run_job(c: ApiClient, title: str, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    console.rule(f"[bold]{title}")
    console.print(f"POST /api/v1/jobs kind={kind} params={params}")
    job = c.submit(kind, params)
    job = watch(c, job["id"], quiet=False)
    print_job(job)
    if job["state"] != "succeeded":
        fail(f"{kind} job {job['id']} ended {job['state']}: {job.get('error')}")
    return job


def step_platform(c: ApiClient) -> None:
    _run_job(
        c,
        "1. platform: an echo job through the queue",
        "echo",
        {"message": "hello from the demo", "sleep_s": 0.6, "stages": 3},
    )


STEPS: list[Step] = [step_platform]


def demo(
    worker_concurrency: int = typer.Option(2, min=1, help="Celery worker processes"),
) -> None:
    """Start the API and a worker, run the main jobs end to end, print results and timings."""
    from backend.db.migrate import upgrade

    settings = get_settings()
    settings.ensure_dirs()
    console.print(
        f"Recflow demo on the {settings.env} settings: database {settings.sqlalchemy_url}, "
        f"broker {settings.celery_broker_url.split('@')[-1]}, data under {settings.data_dir}/"
    )
    upgrade(settings.sqlalchemy_url)
    t0 = time.perf_counter()
    with running_stack(settings.data_dir / "logs", worker_concurrency=worker_concurrency) as st:
        console.print(f"API at {st.api_url} (docs at {st.api_url}/docs); logs in {st.log_dir}/")
        c = ApiClient(
            st.api_url, api_key=settings.api_key.get_secret_value() if settings.api_key else None
        )
        for step in STEPS:
            step(c)
    console.rule()
    console.print(f"[bold green]demo finished[/] in {time.perf_counter() - t0:.1f} s")
