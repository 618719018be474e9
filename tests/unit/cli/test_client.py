"""The CLI's API client sends RECFLOW_API_KEY on every request."""

from __future__ import annotations

import httpx
import pytest

from backend.cli.client import ApiClient
from backend.config import get_settings


def test_every_request_carries_the_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECFLOW_API_KEY", "cli-key-0123456789")
    get_settings.cache_clear()
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("X-API-Key"))
        return httpx.Response(200, json={"id": 1, "state": "succeeded"})

    try:
        client = ApiClient("http://api.test")
        client.http._transport = httpx.MockTransport(handler)
        client.request("GET", "/api/v1/users/1/recommendations")
        client.submit("echo", {})
        client.wait(1)
    finally:
        get_settings.cache_clear()
    assert seen == ["cli-key-0123456789"] * 3
    explicit = ApiClient("http://api.test", api_key="given-key-0123456789")
    assert explicit.http.headers["X-API-Key"] == "given-key-0123456789"
