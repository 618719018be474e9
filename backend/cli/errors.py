"""How every ``recflow`` command ends on an error: one line on stderr and a documented exit code.

The policy (README, "Exit codes"): an error a user can act on prints exactly one line,
``error: <message>``, and exits with :func:`backend.errors.exit_code` of the status the API would
answer (2 the command line or its input is wrong, 3 not found, 4 conflict, 5 unavailable, 1 a
job failed). Those errors are the domain's (``AppError``, ``DataError``: whatever
:func:`backend.errors.describe` recognises), invalid settings, an unreachable database, a file
that cannot be read or written, and the command's own (:class:`CommandError`, Typer's usage
errors). Anything else is a bug: ``error: internal error (<type>); run again with --debug for
the traceback`` and exit 1. ``recflow --debug ...`` prints the traceback before the line.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from typer import TyperException
from typer.core import TyperGroup

from backend.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    describe,
    exit_code,
)


class CommandError(Exception):
    """An error a command reports itself, with the exit code that classifies it."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = code


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """End the command with ``error: message`` and exit ``code`` (see the module's policy)."""
    raise CommandError(message, code)


def usage(message: str) -> NoReturn:
    """End the command because its command line or its input is wrong (exit 2)."""
    raise CommandError(message, EXIT_USAGE)


class _Mode:
    """Whether this process shows tracebacks (``recflow --debug``); one command per process."""

    debug = False


mode = _Mode()


def one_line(message: str) -> str:
    """The message on one line: a terminal or a log keeps an error to the line it starts on."""
    parts = [part.strip() for part in message.splitlines() if part.strip()]
    return "; ".join(parts) or "(no message)"


def explain(exc: BaseException) -> tuple[str, int] | None:
    """The message and exit code of an error a user can act on; None for a bug."""
    if isinstance(exc, CommandError):
        return exc.message, exc.exit_code
    if isinstance(exc, TyperException):
        # Typer's usage errors (an unknown option, a bad value, a missing argument).
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        return exc.format_message() + hint, exc.exit_code
    described = describe(exc)
    if described is not None:
        return described.message, exit_code(described.status)
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        # Settings that fail their checks (production without keys, a bad RECFLOW_API_KEYS
        # entry); the messages never hold a key.
        messages = [e["msg"].removeprefix("Value error, ") for e in exc.errors(include_input=False)]
        return "settings: " + "; ".join(messages), EXIT_USAGE
    if isinstance(exc, OperationalError):
        return _database_message(exc), EXIT_UNAVAILABLE
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}", EXIT_FAILED
    return None


def _database_message(exc: OperationalError) -> str:
    # A database that is down or not migrated is an operator's problem, not a traceback.
    first = (str(exc.orig) if exc.orig else str(exc)).splitlines()[0]
    try:
        from backend.config import get_settings

        where = f" {get_settings().sqlalchemy_url.split('@')[-1]}"
    except ValidationError:
        where = ""
    return f"database{where}: {first}. Check that it is reachable and run `recflow db upgrade`."


def report(exc: BaseException, *, debug: bool) -> int:
    """Print ``exc`` as the policy says and return the process's exit code."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    explained = explain(exc)
    if explained is None:
        message = f"internal error ({type(exc).__name__}); run again with --debug for the traceback"
        code = EXIT_FAILED
    else:
        message, code = explained
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    return code


class CommandGroup(TyperGroup):
    """A command group that applies the policy when it is the program's entry point."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        mode.debug = False
        try:
            returned = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
            code = returned if isinstance(returned, int) else 0
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
        except Exception as exc:
            if isinstance(exc, TyperException) and type(exc).__name__ == "NoArgsIsHelpError":
                # A group called without a command: its help (Typer's rich help printed itself).
                help_text = exc.format_message()
                if help_text:
                    sys.stdout.write(help_text + "\n")
                code = EXIT_USAGE
            else:
                code = report(exc, debug=mode.debug)
        sys.exit(code)
