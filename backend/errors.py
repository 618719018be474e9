"""The errors a user can act on, and how the two doors (HTTP and the CLI) show them.

Two families, one policy:

* ``AppError`` and its subclasses are raised by the domain services (jobs, registry, serving,
  experiments, reports). Each class names the HTTP status that describes it.
* ``DataError`` is raised by the pure cores (``backend.recsys``, ``backend.abtest``) for input data
  or parameters they cannot use. It is a ``ValueError`` and knows nothing of HTTP.

``describe()`` turns either into ``(status, code, message, detail)``. The API's one handler answers
``{"error": message, "detail": detail}`` with that status; the CLI prints ``error: message`` on
one line and exits with ``exit_code(status)``. Nothing else is shown to a user: any other
exception is a bug, logged with its traceback and answered 500 (exit code 1 on the CLI).
"""

from __future__ import annotations

from typing import Any, NamedTuple


class AppError(Exception):
    """An error a user can act on, with the HTTP status that describes it."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, detail: Any = None, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


class NotFoundError(AppError):
    status_code = 404
    code = "not_found"


class ConflictError(AppError):
    status_code = 409
    code = "conflict"


class InvalidInputError(AppError):
    status_code = 422
    code = "invalid_input"


class UnavailableError(AppError):
    status_code = 503
    code = "unavailable"


class UnauthorizedError(AppError):
    status_code = 401
    code = "unauthorized"


class DataError(ValueError):
    """Input data or parameters that a pure core cannot use; the message says what to fix."""


class Described(NamedTuple):
    status: int
    code: str
    message: str
    detail: Any


def describe(exc: BaseException) -> Described | None:
    """How a user sees ``exc``, or None when it is not a user's error (a bug, an outage)."""
    if isinstance(exc, AppError):
        return Described(exc.status_code, exc.code, exc.message, exc.detail)
    if isinstance(exc, DataError):
        return Described(422, "invalid_input", str(exc) or type(exc).__name__, None)
    return None


#: The CLI's exit codes (README, "Exit codes"): 0 done; 1 failed (a job failed, an internal
#: error); 2 the command line or its input is wrong; 3 something was not found; 4 a conflict;
#: 5 a service is unavailable; 130 interrupted.
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNAVAILABLE = 5
EXIT_INTERRUPTED = 130


def exit_code(status: int) -> int:
    """The CLI exit code of an error the API would answer with ``status``."""
    if status == 404:
        return EXIT_NOT_FOUND
    if status == 409:
        return EXIT_CONFLICT
    if status in (502, 503, 504):
        return EXIT_UNAVAILABLE
    if 400 <= status < 500:
        return EXIT_USAGE
    return EXIT_FAILED
