"""Top-level command tree. Each group lives in its own module."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from pydantic import SecretStr

from backend import catalog
from backend.cli import (
    abtest,
    datasets,
    db,
    demo,
    experiments,
    items,
    jobs,
    models,
    monitor,
    recommend,
    report,
    simulate,
    streaming,
    training,
)
from backend.cli.errors import CommandGroup, mode
from backend.cli.output import usage
from backend.config import Settings, get_settings

catalog.install()  # the job kinds the CLI submits and runs in-process

app = typer.Typer(
    name="recflow",
    cls=CommandGroup,  # the one error policy: one line, an exit code, --debug for the traceback
    help="Recflow: recommendation pipelines as jobs (ingest, train, validate, A/B, serve).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: it wraps to the terminal (80 columns at most) and shows flags as flags.
    rich_markup_mode=None,
)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="on an error, print its traceback too")
    ] = False,
) -> None:
    mode.debug = debug


app.add_typer(jobs.app, name="jobs")
app.add_typer(db.app, name="db")
app.add_typer(abtest.app, name="abtest")
app.add_typer(experiments.app, name="experiments")
app.add_typer(items.app, name="items")
app.add_typer(report.app, name="report")
app.add_typer(streaming.lake_app, name="lake")
app.command()(streaming.produce)
app.command()(streaming.ingest)
app.command("simulate-loop")(streaming.simulate_loop)
app.command("monitor")(monitor.monitor)
app.add_typer(simulate.app, name="simulate")
app.add_typer(models.app, name="models")
app.add_typer(datasets.app, name="datasets")
for _command in (training.train, training.validate, training.search, recommend.recommend):
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

    settings = get_settings()
    settings.ensure_dirs()
    uvicorn.run(
        "backend.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level="info",
        # Streams end at once on a stop signal; anything still running after this is cancelled.
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
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


def flower_launch(
    settings: Settings, *, port: int, address: str, basic_auth: str | None
) -> tuple[list[str], dict[str, str]]:
    """Flower's command line and environment, with its authentication from the settings.

    The credentials go to Flower as FLOWER_* variables (Flower reads them itself), never on a
    command line that `ps` shows. Production refuses to start Flower without authentication:
    an open Flower can apply tasks and shut workers down.
    """
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_UNAUTHENTICATED_API"}
    if basic_auth is not None:
        settings = settings.model_copy(update={"flower_basic_auth": SecretStr(basic_auth)})
    entries = settings.flower_basic_auth_entries()  # a bad entry is named, never echoed
    if entries:
        env["FLOWER_BASIC_AUTH"] = ",".join(entries)
    if settings.flower_auth:
        env["FLOWER_AUTH"] = settings.flower_auth
        for name, value in (
            ("FLOWER_AUTH_PROVIDER", settings.flower_auth_provider),
            ("FLOWER_OAUTH2_KEY", settings.flower_oauth2_key),
            ("FLOWER_OAUTH2_REDIRECT_URI", settings.flower_oauth2_redirect_uri),
        ):
            if value:
                env[name] = value
        if settings.flower_oauth2_secret is not None:
            env["FLOWER_OAUTH2_SECRET"] = settings.flower_oauth2_secret.get_secret_value()
    if settings.env == "production" and not (entries or settings.flower_auth):
        raise ValueError(
            "RECFLOW_ENV=production needs Flower's authentication: set "
            "RECFLOW_FLOWER_BASIC_AUTH=user:password (or --basic-auth), or its OAuth options "
            "(RECFLOW_FLOWER_AUTH and RECFLOW_FLOWER_OAUTH2_*)"
        )
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "flower",
        f"--port={port}",
        f"--address={address}",
    ]
    return args, env


@app.command()
def flower(
    port: int = typer.Option(5555, help="port for the Flower UI"),
    address: str = typer.Option("127.0.0.1", help="address to bind"),
    basic_auth: str | None = typer.Option(
        None,
        "--basic-auth",
        help="user:password[,user2:password2] (default RECFLOW_FLOWER_BASIC_AUTH)",
        show_default=False,
    ),
) -> None:
    """Start Flower to watch the workers (it sees them when the broker is Redis)."""
    settings = get_settings()  # invalid settings: backend.cli.main reports them
    try:
        args, env = flower_launch(settings, port=port, address=address, basic_auth=basic_auth)
    except ValueError as exc:
        usage(str(exc))
    os.execve(sys.executable, args, env)
