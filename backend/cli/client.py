"""A small HTTP client for the Recflow API, used by the CLI and the demo."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from backend.cli.errors import fail
from backend.config import get_settings
from backend.errors import EXIT_UNAVAILABLE, exit_code


class ApiClient:
    """Every request carries the API key: ``api_key``, else RECFLOW_API_KEY from the settings."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        if api_key is None:
            configured = get_settings().api_key
            api_key = configured.get_secret_value() if configured is not None else None
        headers = {"X-API-Key": api_key} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the Recflow API at {self.http.base_url}: {exc}", EXIT_UNAVAILABLE)
        if r.status_code >= 400:
            try:
                body = r.json()
                message = body.get("error") or body
            except ValueError:
                message = r.text[:300]
            fail(f"{method} {path} -> {r.status_code}: {message}", exit_code(r.status_code))
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        return r.content

    def submit(self, kind: str, params: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        job: dict[str, Any] = self.request(
            "POST", "/api/v1/jobs", json={"kind": kind, "params": params}, headers=headers
        )
        return job

    def wait(
        self,
        job_id: int,
        *,
        timeout_s: float = 3600,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        interval_s: float = 0.2,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            job: dict[str, Any] = self.request("GET", f"/api/v1/jobs/{job_id}")
            if on_update is not None:
                on_update(job)
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                fail(f"job {job_id} did not end within {timeout_s:.0f} s (state {job['state']})")
            time.sleep(interval_s)
