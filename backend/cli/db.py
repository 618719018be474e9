"""``recflow db``: schema migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from backend.cli.errors import CommandGroup
from backend.cli.output import console, usage
from backend.config import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(
    cls=CommandGroup, help="Database schema (Alembic migrations).", no_args_is_help=True
)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from alembic.util import CommandError

    from backend.db.migrate import upgrade as run_upgrade

    settings = get_settings()
    settings.ensure_dirs()
    # An unreachable database is the error policy's (exit 5); a revision Alembic does not know
    # is the command line's.
    try:
        run_upgrade(settings.sqlalchemy_url, revision)
    except CommandError as exc:
        usage(f"migration failed: {exc}")
    console.print(f"database at revision {revision}")


@contextmanager
def database() -> Iterator[Session]:
    """A session on the configured database, migrated to the current schema first: what a
    command that reads or writes the API's records opens."""
    from backend.db.migrate import upgrade as run_upgrade
    from backend.db.session import session_scope

    settings = get_settings()
    run_upgrade(settings.sqlalchemy_url)
    with session_scope(settings.sqlalchemy_url) as session:
        yield session
