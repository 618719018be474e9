"""Domain errors. One handler in the API turns them into ``{"error": ..., "detail": ...}``."""

from __future__ import annotations

from typing import Any


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
