"""Request guards: body size and content type, before any endpoint parses a body."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MUTATING = {"POST", "PUT", "PATCH"}


async def _reply(send: Send, status: int, message: str, *, close: bool = False) -> None:
    body = json.dumps({"error": message, "detail": None}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        # The rest of the body is never read: the connection cannot carry another request.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """Rejects oversized bodies (413) and non-JSON bodies on the JSON API (415).

    The declared Content-Length is checked first. The body itself is then read here, up to the
    limit, before the endpoint runs: a chunked body (no Content-Length), or a client that lies
    about the length, gets the same clean 413 whatever the route, instead of an endpoint that
    sees a truncated body. Bodies are at most ``max_bytes``, and every endpoint that takes one
    reads it whole anyway, so buffering it costs no extra memory in practice.

    Header values may hold any bytes: they are decoded as latin-1, which never fails.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, json_prefix: str = "/api/") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.json_prefix = json_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "").strip()
        if length.isdigit() and int(length) > self.max_bytes:
            await _reply(send, 413, self._too_large(), close=True)
            return
        ctype = headers.get("content-type", "")
        has_body = (length != "" and length != "0") or "transfer-encoding" in headers
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
                f"(got {ctype[:80] or 'none'!r})",
            )
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body: nobody to answer
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await _reply(send, 413, self._too_large(), close=True)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the client's disconnect

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body is larger than {self.max_bytes} bytes (RECFLOW_MAX_BODY_BYTES)"
