"""``recflow db``: schema migrations."""

from __future__ import annotations

import typer

from backend.cli.output import console, fail
from backend.config import get_settings

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from backend.db.migrate import upgrade as run_upgrade

    settings = get_settings()
    settings.ensure_dirs()
    try:
        run_upgrade(settings.sqlalchemy_url, revision)
    except Exception as exc:
        fail(f"migration failed: {exc}")
    console.print(f"database at revision {revision}")
