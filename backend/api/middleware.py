"""Request guards: body size and content type, before any endpoint parses a body."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MUTATING = {"POST", "PUT", "PATCH"}


async def _reply(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message, "detail": None}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """Rejects oversized bodies (413) and non-JSON bodies on the JSON API (415).

    The size is checked on the declared Content-Length and again while the body streams, so a
    client that lies about the length is cut off too.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, json_prefix: str = "/api/") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.json_prefix = json_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _reply(send, 413, f"request body is larger than {self.max_bytes} bytes")
            return
        ctype = headers.get("content-type", "")
        has_body = (length is not None and length != "0") or "transfer-encoding" in headers
        if (
            has_body
            and scope["path"].startswith(self.json_prefix)
            and not scope["path"].endswith("/upload")
            and "json" not in ctype.split(";")[0]
        ):
            await _reply(
                send,
                415,
                "send the body as JSON with Content-Type: application/json "
                f"(got {ctype or 'none'!r})",
            )
            return
        seen = 0
        too_big = False

        async def guarded() -> Message:
            nonlocal seen, too_big
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_big = True
                    return {"type": "http.disconnect"}
            return message

        started = False

        async def track(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, guarded, track)
        if too_big and not started:
            await _reply(send, 413, f"request body is larger than {self.max_bytes} bytes")
