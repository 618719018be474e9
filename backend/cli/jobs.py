"""``recflow jobs``: submit, watch, list and cancel jobs through the REST API."""

from __future__ import annotations

import json
from typing import Any

import typer

from backend.cli.client import ApiClient
from backend.cli.errors import CommandGroup
from backend.cli.output import console, emit_json, fail, fmt_s, job_progress, table, usage
from backend.config import get_settings
from backend.errors import EXIT_UNAVAILABLE

app = typer.Typer(
    cls=CommandGroup, help="Submit and watch jobs over the REST API.", no_args_is_help=True
)

ApiOpt = typer.Option(None, "--api", help="API base URL (default: RECFLOW_API_URL)")
JsonOpt = typer.Option(False, "--json", help="print machine-readable JSON")


def client(api: str | None) -> ApiClient:
    s = get_settings()
    key = s.api_key.get_secret_value() if s.api_key else None
    return ApiClient(api or s.api_url, api_key=key)


def watch(c: ApiClient, job_id: int, *, quiet: bool) -> dict[str, Any]:
    """Wait for a job, with a progress bar unless quiet."""
    if quiet:
        return c.wait(job_id)
    with job_progress("job {task.fields[job]} [bold]{task.fields[state]}[/]") as bar:
        task = bar.add_task("job", total=1.0, job=job_id, state="queued", message="")

        def update(job: dict[str, Any]) -> None:
            bar.update(
                task,
                completed=job["progress"],
                state=job["state"],
                message=(job.get("message") or "")[:60],
            )

        return c.wait(job_id, on_update=update)


def print_job(job: dict[str, Any]) -> None:
    console.print(
        f"job [bold]{job['id']}[/] ({job['kind']}): [bold]{job['state']}[/] "
        f"progress {job['progress']:.0%}, attempts {job['attempts']}"
    )
    if job.get("stages"):
        table(
            "stages",
            ["stage", "duration", "rows in", "rows out"],
            [
                (s["name"], fmt_s(s["duration_s"]), s["rows_in"], s["rows_out"])
                for s in job["stages"]
            ],
        )
    if job.get("error"):
        console.print(f"[red]error:[/] {job['error']}")
    if job.get("result") is not None:
        console.print_json(json.dumps(job["result"], default=str))


def finish(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(job)
    else:
        print_job(job)
    if job["state"] in ("failed", "cancelled"):
        raise typer.Exit(1)


@app.command()
def submit(
    kind: str = typer.Argument(..., help="job kind (see `recflow jobs kinds`)"),
    params: str = typer.Option("{}", "--params", "-p", help="params as a JSON object"),
    wait: bool = typer.Option(False, "--wait", "-w", help="wait until the job ends"),
    key: str | None = typer.Option(None, "--idempotency-key", help="repeat-safe key"),
    api: str | None = ApiOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Submit a job of KIND."""
    try:
        parsed = json.loads(params)
    except json.JSONDecodeError as exc:
        usage(f"--params is not valid JSON: {exc}")
    if not isinstance(parsed, dict):
        usage("--params must be a JSON object, e.g. '{\"sleep_s\": 1}'")
    c = client(api)
    job = c.submit(kind, parsed, key)
    if wait:
        job = watch(c, job["id"], quiet=as_json)
        finish(job, as_json)
    elif as_json:
        emit_json(job)
    else:
        console.print(f"submitted job {job['id']} ({kind}); state {job['state']}")


@app.command()
def get(job_id: int, api: str | None = ApiOpt, as_json: bool = JsonOpt) -> None:
    """Show one job with its stages and result."""
    job = client(api).request("GET", f"/api/v1/jobs/{job_id}")
    emit_json(job) if as_json else print_job(job)


@app.command("wait")
def wait_cmd(job_id: int, api: str | None = ApiOpt, as_json: bool = JsonOpt) -> None:
    """Wait for a job to end, with a progress bar; exits 1 if it failed or was cancelled."""
    c = client(api)
    finish(watch(c, job_id, quiet=as_json), as_json)


@app.command("list")
def list_cmd(
    kind: str | None = None,
    state: str | None = None,
    limit: int = typer.Option(20, min=1, max=200),
    api: str | None = ApiOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List recent jobs."""
    params: dict[str, Any] = {"limit": limit}
    if kind:
        params["kind"] = kind
    if state:
        params["state"] = state
    page = client(api).request("GET", "/api/v1/jobs", params=params)
    if as_json:
        emit_json(page)
        return
    table(
        "jobs",
        ["id", "kind", "state", "progress", "created", "message"],
        [
            (j["id"], j["kind"], j["state"], f"{j['progress']:.0%}", j["created_at"], j["message"])
            for j in page["items"]
        ],
    )


@app.command()
def cancel(job_id: int, api: str | None = ApiOpt, as_json: bool = JsonOpt) -> None:
    """Cancel a queued or running job."""
    job = client(api).request("POST", f"/api/v1/jobs/{job_id}/cancel")
    emit_json(job) if as_json else console.print(f"job {job_id}: {job['state']} ({job['message']})")


@app.command()
def kinds(api: str | None = ApiOpt, as_json: bool = JsonOpt) -> None:
    """List the job kinds the server accepts."""
    data = client(api).request("GET", "/api/v1/jobs/kinds")
    if as_json:
        emit_json(data)
        return
    table("job kinds", ["kind", "description"], [(k["name"], k["description"]) for k in data])


@app.command()
def reap(as_json: bool = JsonOpt) -> None:
    """Recover lost and stuck jobs once, as the supervisors do every few seconds.

    Runs on a host that reaches the database and the broker (not through the API): re-queues or
    fails running jobs whose heartbeat is older than RECFLOW_JOB_HEARTBEAT_TIMEOUT_S, and sends
    queued jobs whose message is missing or was lost.
    """
    from dataclasses import asdict

    from backend.jobs.queue import make_celery
    from backend.jobs.supervisor import run_once

    settings = get_settings()
    celery = make_celery(settings)
    try:
        report = run_once(settings, celery)
    except Exception as exc:
        fail(f"reap failed (database or broker unreachable?): {exc}", EXIT_UNAVAILABLE)
    finally:
        celery.close()
    if as_json:
        emit_json(asdict(report))
        return
    table(
        "jobs reaped",
        ["action", "jobs"],
        [(action, ", ".join(map(str, ids)) or "-") for action, ids in asdict(report).items()],
    )
