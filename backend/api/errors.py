"""One error shape for the whole API: ``{"error": <message>, "detail": <anything>}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError as DatabaseRefusedValue
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.errors import AppError, DataError, describe

log = logging.getLogger(__name__)

BODY_UNREADABLE = "There was an error parsing the body"


def _body(message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": message, "detail": detail}


def _describe(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ()) if p != "body"]
    where = ".".join(loc) or "request body"
    if err.get("type") == "json_invalid":
        ctx = err.get("ctx", {})
        return f"body is not valid JSON: {ctx.get('error', err.get('msg'))}"
    return f"{where}: {err.get('msg')}"


def install(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    @app.exception_handler(DataError)
    async def _app_error(_: Request, exc: Exception) -> JSONResponse:
        described = describe(exc)
        assert described is not None  # both classes are described
        return JSONResponse(
            _body(described.message, described.detail), status_code=described.status
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [dict(e) for e in exc.errors()]
        message = "; ".join(_describe(e) for e in errors) or "invalid request"
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in errors
        ]
        return JSONResponse(_body(message, detail), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        status = exc.status_code
        if status == 404 and message == "Not Found":
            message = "no such endpoint; see /docs for the API"
        elif status == 400 and message == BODY_UNREADABLE:
            # FastAPI's answer to a body it cannot decode (bytes that are not UTF-8): the same
            # 422 as any other malformed JSON body.
            message, status = "body is not valid JSON: it must be UTF-8 text", 422
        return JSONResponse(_body(message), status_code=status, headers=exc.headers)

    @app.exception_handler(DatabaseRefusedValue)
    async def _refused(_: Request, exc: DatabaseRefusedValue) -> JSONResponse:
        # The database refused a value a request carried (PostgreSQL: a NUL character in a
        # string, a number out of its range): the request is at fault, not the server.
        log.info("database refused a request's value: %s", exc.orig)
        return JSONResponse(
            _body(
                "a value in the request cannot be stored or compared by the database (for "
                "example a NUL character in a string, or a number out of range); remove it"
            ),
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(
            _body("internal error; the server log has the details", type(exc).__name__),
            status_code=500,
        )
