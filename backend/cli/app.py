"""Top-level command tree. Each group lives in its own module."""

from __future__ import annotations

import os
import sys

import typer

from backend.cli import abtest, db, demo, jobs, monitor, recsys, report, streaming
from backend.config import get_settings

app = typer.Typer(
    name="recflow",
    help="Recflow: recommendation pipelines as jobs (ingest, train, validate, A/B, serve).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(jobs.app, name="jobs")
app.add_typer(db.app, name="db")
app.add_typer(abtest.app, name="abtest")
app.add_typer(report.app, name="report")
app.add_typer(streaming.lake_app, name="lake")
app.command()(streaming.produce)
app.command()(streaming.ingest)
app.command("monitor")(monitor.monitor)
app.command("simulate-traffic")(monitor.simulate_traffic)
app.add_typer(recsys.simulate_app, name="simulate")
app.add_typer(recsys.models_app, name="models")
app.add_typer(recsys.datasets_app, name="datasets")
for _command in (recsys.train, recsys.validate, recsys.search, recsys.recommend):
    app.command()(_command)
app.command("demo")(demo.demo)


@app.command()
def api(
    host: str = typer.Option("127.0.0.1", help="address to bind"),
    port: int = typer.Option(8000, help="port to bind"),
    workers: int = typer.Option(1, min=1, help="API worker processes"),
    reload: bool = typer.Option(False, help="reload on code changes (development)"),
) -> None:
    """Start the HTTP API (uvicorn)."""
    import uvicorn

    get_settings().ensure_dirs()
    uvicorn.run(
        "backend.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level="info",
    )


@app.command()
def worker(
    concurrency: int = typer.Option(2, min=1, help="worker processes"),
    pool: str = typer.Option("prefork", help="Celery pool: prefork, solo or threads"),
    loglevel: str = typer.Option("INFO"),
) -> None:
    """Start a Celery worker that runs jobs."""
    get_settings().ensure_dirs()
    from backend.cli.stack import worker_command

    os.execv(sys.executable, worker_command(concurrency, pool, loglevel))


@app.command()
def flower(port: int = typer.Option(5555, help="port for the Flower UI")) -> None:
    """Start Flower to watch the workers (it sees them when the broker is Redis)."""
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "flower",
        f"--port={port}",
        "--address=127.0.0.1",
    ]
    os.execv(sys.executable, args)
