"""The ``recflow`` command."""

from __future__ import annotations

import sys

from backend.cli.app import app


def main() -> None:
    from pydantic import ValidationError
    from sqlalchemy.exc import OperationalError

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except ValidationError as exc:
        # Settings that fail their checks (production without keys, a bad RECFLOW_API_KEYS
        # entry): one line each, no traceback; the messages never hold a key.
        for err in exc.errors(include_input=False):
            sys.stderr.write(f"error: settings: {err['msg'].removeprefix('Value error, ')}\n")
        sys.exit(2)
    except OperationalError as exc:
        # A database that is down or not migrated is an operator's problem, not a traceback.
        from backend.config import get_settings

        first = str(exc.orig).splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        sys.stderr.write(
            f"error: database {get_settings().sqlalchemy_url.split('@')[-1]}: {first}. "
            "Check that it is reachable and run `recflow db upgrade`.\n"
        )
        sys.exit(1)
