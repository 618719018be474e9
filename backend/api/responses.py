"""Response classes and the documented responses every route shares.

``ErrorOut`` is the one error shape of the API (``{"error": <message>, "detail": <anything>}``);
``errors(...)`` documents it for the statuses a route raises itself, and ``document_errors``
adds the statuses that come from the request machinery (validation, the body guard) to every
operation, so the OpenAPI document lists every 4xx a route can really answer.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


class FastJSON(JSONResponse):
    """A JSON response rendered by orjson, for the serving hot path (no model validation pass).

    A JSONResponse subclass, so that the OpenAPI document describes its body by the model given
    in ``responses={200: {"model": ...}}`` rather than as a string.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ErrorOut(BaseModel):
    """Every error the API answers: a message a user can act on, and optional structured detail."""

    error: str = Field(description="what went wrong and what to do about it")
    detail: Any = Field(
        default=None,
        description="structured detail, e.g. a list of {loc, msg, type} for invalid input",
    )


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "the request cannot be read",
    401: "no API key, or an unknown one (send X-API-Key or Authorization: Bearer)",
    403: "the API key lacks the scope this route needs",
    404: "no such resource",
    409: "the request conflicts with the resource's state",
    413: "the request body is larger than RECFLOW_MAX_BODY_BYTES",
    415: "the body is not JSON (send Content-Type: application/json)",
    422: "invalid input; the message names each field",
    503: "a dependency is unavailable; the message says what to do",
}


ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


def error_response(code: int, description: str | None = None) -> dict[str, Any]:
    """One documented error response: the shared ErrorOut shape as JSON."""
    return {
        "description": description or ERROR_DESCRIPTIONS[code],
        "content": {"application/json": {"schema": ERROR_REF}},
    }


def errors(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route for the error statuses it raises itself.

    ``described`` overrides a description by status, written as ``s404="no such job"``.
    """
    return {code: error_response(code, described.get(f"s{code}")) for code in codes}


MUTATING = {"post", "put", "patch"}
# FastAPI's own 422 schema; every 422 of this API is an ErrorOut instead.
FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def add_error_responses(schema: dict[str, Any], json_prefix: str = "/api/") -> None:
    """Document, on every operation, the error statuses that the request machinery answers.

    422 for any operation with parameters or a body (validation; FastAPI's default schema is
    replaced by ErrorOut, the shape the handler really sends), 413 and 415 for the bodies the
    BodyGuard middleware refuses. (401 and 403 are documented by backend/api/auth.py on the
    operations its policy guards, when keys are configured.) An operation's own responses win:
    they already say why it answers a status.
    """
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            extra: list[int] = []
            if method in MUTATING:
                extra.append(413)
                if path.startswith(json_prefix) and not path.endswith("/upload"):
                    extra.append(415)
            if operation.get("parameters") or operation.get("requestBody"):
                extra.append(422)
            ref = "#/components/schemas/HTTPValidationError"
            if (
                responses.get("422", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
                .get("$ref")
                == ref
            ):
                del responses["422"]
            for code in extra:
                responses.setdefault(str(code), error_response(code))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorOut"] = ErrorOut.model_json_schema()
    text = json.dumps(schema.get("paths", {}))
    for name in FASTAPI_VALIDATION:
        if f'"#/components/schemas/{name}"' not in text:
            components.pop(name, None)


def document_errors(app: FastAPI) -> None:
    """Build the app's OpenAPI document with ``add_error_responses`` applied."""
    build = app.openapi
    done: list[dict[str, Any]] = []  # the document FastAPI built and cached, once processed

    def openapi() -> dict[str, Any]:
        schema = build()
        if not any(schema is d for d in done):
            add_error_responses(schema)
            done[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
