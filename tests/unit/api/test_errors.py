"""One error policy: every domain error and every core data error reaches the client as
``{"error": <message>, "detail": <detail>}`` with its status; anything else is a 500 that says
nothing of what went wrong beyond the exception's class."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from backend.abtest.errors import AbTestInputError
from backend.api.app import create_app
from backend.config import Settings
from backend.errors import (
    AppError,
    ConflictError,
    DataError,
    InvalidInputError,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
)
from backend.recsys.errors import UnknownUserError

# The statuses backend/errors.py gives its classes; a subclass elsewhere keeps or names its own.
STATUS: dict[type[AppError], int] = {
    AppError: 400,
    NotFoundError: 404,
    ConflictError: 409,
    InvalidInputError: 422,
    UnavailableError: 503,
    UnauthorizedError: 401,
}
SECRET = "postgresql://recflow:hunter2@db.internal/recflow at /srv/recflow/var/x.npy"


def every_app_error() -> list[type[AppError]]:
    """AppError and all its subclasses the app imports (create_app imports every domain)."""
    found: list[type[AppError]] = [AppError]
    for cls in found:
        found.extend(c for c in cls.__subclasses__() if c not in found)
    return found


Raise = Callable[[BaseException], TestClient]


@pytest.fixture
def client_for(settings: Settings) -> Raise:
    """A client of the real app with one more route, GET /raise, that raises the given error."""
    app = create_app(settings)
    to_raise: list[BaseException] = []

    @app.get("/raise")
    def fail() -> None:
        """Raise the exception under test."""
        raise to_raise[0]

    def make(exc: BaseException) -> TestClient:
        to_raise[:] = [exc]
        return TestClient(app, raise_server_exceptions=False)

    return make


def build(cls: type[AppError], message: str) -> AppError:
    try:
        return cls(message, detail={"field": "x"})
    except TypeError:  # a subclass with its own required arguments
        return cls(message, reason="test")  # type: ignore[call-arg]


def test_the_base_classes_have_their_statuses() -> None:
    for cls, status in STATUS.items():
        assert cls.status_code == status, cls


@pytest.mark.parametrize("cls", every_app_error(), ids=lambda c: c.__name__)
def test_every_app_error_is_its_status_and_the_error_shape(client_for: Raise, cls: type) -> None:
    exc = build(cls, f"{cls.__name__}: what to fix")
    r = client_for(exc).get("/raise")
    assert r.status_code == STATUS.get(cls, cls.status_code), r.text
    body = r.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == f"{cls.__name__}: what to fix"
    assert body["detail"] == exc.detail


def test_an_app_error_may_name_another_status(client_for: Raise) -> None:
    r = client_for(AppError("too many", status_code=429)).get("/raise")
    assert r.status_code == 429 and r.json() == {"error": "too many", "detail": None}


@pytest.mark.parametrize(
    "exc",
    [
        DataError("ratings must be finite"),
        UnknownUserError("user 'u9' is not in the model; recommend from popular items"),
        AbTestInputError("variant 'B' has more clicks than impressions"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_core_data_error_is_a_422_with_its_message(client_for: Raise, exc: DataError) -> None:
    r = client_for(exc).get("/raise")
    assert r.status_code == 422, r.text
    assert r.json() == {"error": str(exc), "detail": None}


@pytest.mark.parametrize(
    "exc",
    [RuntimeError(SECRET), ValueError(SECRET), KeyError(SECRET)],
    ids=lambda e: type(e).__name__,
)
def test_an_unexpected_error_is_a_500_that_leaks_nothing(
    client_for: Raise, exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    r = client_for(exc).get("/raise")
    assert r.status_code == 500
    assert r.json() == {
        "error": "internal error; the server log has the details",
        "detail": type(exc).__name__,
    }
    for part in ("hunter2", "db.internal", "/srv/recflow"):
        assert part not in r.text
    assert "hunter2" in caplog.text  # the log keeps the details for the operator
