"""API keys with scopes: one ASGI middleware and one explicit policy.

``required_scope(method, path)`` says what every request needs: nothing (``/health/*``, the page
shells, ``/metrics`` when RECFLOW_METRICS_PUBLIC is on), or a key with the ``read``, ``write``
or ``admin`` scope, where admin implies write implies read. Anything the policy does not know is
``read`` for GET and HEAD and ``admin`` for every other method, so a new mutating route is closed
until it is listed here (tests/unit/api/test_auth.py walks every route of the app against the
table it expects).

The check is on the serving hot path, so it is a dict lookup of the key's sha256 plus
``hmac.compare_digest``: no database, no thread hop. Keys are never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

Need = Literal["read", "write", "admin"]
RANK: dict[str, int] = {"read": 1, "write": 2, "admin": 3}

HOW_TO_SEND = "send it as the X-API-Key header or as 'Authorization: Bearer <key>'"

# Routes that answer without a key. /docs, /redoc and /monitor are shells: static HTML and
# JavaScript that hold no data. They ask the user for a key and send it as a header with every
# request they make (/openapi.json, the monitoring API and its stream), so they work with a read
# key while everything they could show stays behind one. /openapi.json itself needs a read key:
# it lists every route and parameter of this deployment, which is more than an anonymous caller
# needs (schemathesis loads it with the key header).
SHELLS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/monitor", "/monitor/monitor.js"})

# Every POST, with its scope. The compute POSTs only read (they change nothing); jobs, uploads,
# analyses, report runs and feedback write; activation changes what every user is served.
_POSTS: tuple[tuple[str, Need], ...] = (
    (r"/api/v1/recommendations/batch", "read"),
    (r"/api/v1/users/[^/]+/what-if", "read"),
    (r"/api/v1/scenarios/compare", "read"),
    (r"/api/v1/jobs", "write"),
    (r"/api/v1/jobs/[^/]+/cancel", "write"),
    (r"/api/v1/experiments/[^/]+/analyze", "write"),
    (r"/api/v1/experiments/[^/]+/upload", "write"),
    (r"/api/v1/experiments", "write"),
    # Starting or stopping an experiment changes what a share of all users is served, by a
    # model that need not have passed the promotion gate: the same stake as activation.
    (r"/api/v1/experiments/[^/]+/start", "admin"),
    (r"/api/v1/experiments/[^/]+/stop", "admin"),
    (r"/api/v1/reports/pipeline", "write"),
    (r"/api/v1/feedback", "write"),
    (r"/api/v1/models/[^/]+/activate", "admin"),
)
POST_RULES = tuple((re.compile(pattern), need) for pattern, need in _POSTS)
# Every PUT and PATCH, with its scope: editing the items catalogue writes.
_EDITS: tuple[tuple[str, Need], ...] = ((r"/api/v1/items/[^/]+", "write"),)
EDIT_RULES = tuple((re.compile(pattern), need) for pattern, need in _EDITS)


def required_scope(method: str, path: str, *, metrics_public: bool = True) -> Need | None:
    """The scope a request needs, or None when it needs no key (the module doc has the rules)."""
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]  # /api/v1/jobs/ is redirected to /api/v1/jobs: the same rule
    if method in ("GET", "HEAD"):
        if path.startswith("/health/") or path in SHELLS:
            return None
        if path == "/metrics" and metrics_public:
            return None
        return "read"
    rules = POST_RULES if method == "POST" else EDIT_RULES if method in ("PUT", "PATCH") else ()
    for pattern, need in rules:
        if pattern.fullmatch(path):
            return need
    return "admin"


def key_of(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request presents: X-API-Key, else an ``Authorization: Bearer`` token.

    Raw header bytes are hashed as they are (never decoded), so any byte is harmless.
    """
    bearer: bytes | None = None
    for name, value in headers:
        name = name.lower()
        if name == b"x-api-key":
            return value.strip() or None
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = value[7:].strip() or None
    return bearer


def _payload(message: str, detail: dict[str, Any]) -> bytes:
    return json.dumps({"error": message, "detail": detail}).encode()


class ApiKeyGuard:
    """Refuses a request whose key is missing or wrong (401) or whose scope is too low (403)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: Mapping[bytes, str],
        policy: Callable[[str, str], Need | None],
    ) -> None:
        self.app = app
        # sha256 digest -> (digest, scope): the lookup finds the candidate, compare_digest makes
        # the final equality constant-time. The lookup's timing can tell something about the
        # digest of a guess only, which says nothing about any key.
        self.keys = {digest: (digest, scope) for digest, scope in keys.items()}
        self.policy = policy

    def refusal(self, scope: Scope) -> tuple[int, str, dict[str, Any]] | None:
        """None when the request may pass, else (status, message, detail)."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        need = self.policy(scope.get("method", "GET"), path)
        if need is None:
            return None
        given = key_of(scope["headers"])
        if given is None:
            return (
                401,
                f"this route needs an API key with the {need} scope: {HOW_TO_SEND}",
                {"required_scope": need},
            )
        digest = hashlib.sha256(given).digest()
        found = self.keys.get(digest)
        if found is None or not hmac.compare_digest(found[0], digest):
            return (
                401,
                f"the API key is not valid; this route needs a key with the {need} scope: "
                f"{HOW_TO_SEND}",
                {"required_scope": need},
            )
        have = found[1]
        if RANK[have] < RANK[need]:
            return (
                403,
                f"this route needs a key with the {need} scope and this key has {have} "
                "(admin includes write, write includes read)",
                {"required_scope": need, "key_scope": have},
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        status, message, detail = refused
        body = _payload(message, detail)
        challenge = 'Bearer realm="recflow"'
        if status == 403:
            challenge += f', error="insufficient_scope", scope="{detail["required_scope"]}"'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {}},
}
SCHEMES: dict[str, Any] = {
    "ApiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A key from RECFLOW_API_KEYS; its scope must cover the operation's.",
    },
    "BearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The same key as 'Authorization: Bearer <key>'.",
    },
}


def document_security(schema: dict[str, Any], policy: Callable[[str, str], Need | None]) -> None:
    """Declares the key schemes and, on each guarded operation, its scope and 401/403 answers.

    OpenAPI 3.1 lets a non-OAuth requirement name roles: the list holds the scope needed.
    """
    schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SCHEMES)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            need = policy(method.upper(), path)
            if need is None:
                operation["security"] = []
                continue
            operation["security"] = [{"ApiKeyHeader": [need]}, {"BearerKey": [need]}]
            responses = operation["responses"]
            for status, text in (
                ("401", f"no API key, or not a valid one (the route needs {need})"),
                ("403", f"the key's scope is below {need}"),
            ):
                responses.setdefault(
                    status,
                    {
                        "description": text,
                        "content": {"application/json": {"schema": ERROR_SCHEMA}},
                    },
                )


def install(app: FastAPI, keys: Mapping[bytes, str], *, metrics_public: bool) -> None:
    """Guards ``app`` with ``keys`` (sha256 digest -> scope); no keys leaves every route open."""
    if not keys:
        return

    def policy(method: str, path: str) -> Need | None:
        return required_scope(method, path, metrics_public=metrics_public)

    app.add_middleware(ApiKeyGuard, keys=dict(keys), policy=policy)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            document_security(schema, policy)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
