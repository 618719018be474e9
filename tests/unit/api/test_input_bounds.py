"""Crafted input gets a 4xx in the one error shape, never a 500.

Each case here was a server error before: integers beyond the database's range in paths and
queries, a forged cursor, header bytes that are not UTF-8, a body over the limit sent without a
Content-Length, a body that is not UTF-8, a sample-size plan below float precision.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.api.params import DB_INT_MAX
from backend.config import Settings

HUGE = "99999999999999999999"  # beyond int64: SQLite overflows, PostgreSQL INTEGER even sooner


def assert_error_shape(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and isinstance(body["error"], str)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/v1/jobs/{HUGE}"),
        ("GET", f"/api/v1/jobs/{DB_INT_MAX + 1}"),
        ("GET", "/api/v1/jobs/0"),
        ("POST", f"/api/v1/jobs/{HUGE}/cancel"),
        ("GET", f"/api/v1/models/{HUGE}"),
        ("POST", f"/api/v1/models/{HUGE}/activate"),
        ("GET", f"/api/v1/metrics/records?job_id={HUGE}"),
        ("GET", f"/api/v1/metrics/records?model_id={HUGE}"),
        ("GET", f"/api/v1/monitoring/alerts?before_id={HUGE}"),
        ("GET", f"/api/v1/experiments/e1/analyses/{HUGE}/chart.png"),
        ("GET", f"/api/v1/reports/pipeline?report_id={HUGE}"),
        ("GET", f"/api/v1/reports/pipeline?last={HUGE}"),
        ("GET", f"/api/v1/reports/pipeline?recent={HUGE}"),
        ("GET", f"/api/v1/jobs?limit={HUGE}"),
        ("GET", f"/api/v1/users/u1/recommendations?n={HUGE}"),
        ("GET", f"/api/v1/items/i1/similar?n={HUGE}"),
    ],
)
def test_integers_beyond_the_database_range_are_422(
    client: TestClient, method: str, path: str
) -> None:
    assert_error_shape(client.request(method, path), 422)


def test_integers_at_the_top_of_the_range_are_a_plain_404(client: TestClient) -> None:
    assert_error_shape(client.get(f"/api/v1/jobs/{DB_INT_MAX}"), 404)
    assert_error_shape(client.get(f"/api/v1/models/{DB_INT_MAX}"), 404)
    r = client.get("/api/v1/reports/pipeline", params={"report_id": str(DB_INT_MAX)})
    assert_error_shape(r, 404)


@pytest.mark.parametrize("inner", ["j99999999999999999999", "j-5", "j0", "x12", "j1e9", "ｊ１"])
def test_a_forged_cursor_is_422(client: TestClient, inner: str) -> None:
    cursor = base64.urlsafe_b64encode(inner.encode()).decode().rstrip("=")
    r = client.get("/api/v1/jobs", params={"cursor": cursor})
    assert_error_shape(r, 422)
    assert "cursor is not valid" in r.json()["error"]


def test_a_cursor_that_is_not_base64_text_is_422(client: TestClient) -> None:
    assert_error_shape(client.get("/api/v1/jobs", params={"cursor": "ünïcode"}), 422)


@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Anything", "Content-Type", "User-Agent"])
def test_header_bytes_that_are_not_utf8_never_crash(client: TestClient, header: str) -> None:
    headers = {"Content-Type": "application/json", header: b"caf\xe9\xff"}
    r = client.post("/api/v1/jobs", json={"kind": "echo", "params": {}}, headers=headers)
    if header == "Content-Type":  # the bytes replace application/json: not a JSON body
        assert_error_shape(r, 415)
    else:
        assert r.status_code == 202, r.text


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


@pytest.mark.parametrize(
    "path",
    ["/api/v1/jobs", "/api/v1/experiments/e1/upload", "/api/v1/recommendations/batch"],
)
def test_a_chunked_body_over_the_limit_is_413_whatever_the_route(
    client: TestClient, settings: Settings, path: str
) -> None:
    ctype = "text/csv" if path.endswith("upload") else "application/json"
    r = client.post(
        path,
        content=_chunks(settings.max_body_bytes + 1),  # a generator: no Content-Length
        headers={"Content-Type": ctype},
    )
    assert_error_shape(r, 413)
    assert "larger than" in r.json()["error"]


def test_a_chunked_body_within_the_limit_reaches_the_endpoint(client: TestClient) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"kind": "echo", '
        yield b'"params": {"message": "chunked"}}'

    r = client.post("/api/v1/jobs", content=body(), headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    assert r.json()["params"]["message"] == "chunked"


def test_a_body_that_is_not_utf8_is_422_like_any_malformed_json(client: TestClient) -> None:
    for path in ("/api/v1/jobs", "/api/v1/reports/pipeline", "/api/v1/experiments/e1/analyze"):
        r = client.post(path, content=b"\xff\xfe{", headers={"Content-Type": "application/json"})
        assert_error_shape(r, 422)
        assert "not valid JSON" in r.json()["error"]


@pytest.mark.parametrize(
    "query",
    [
        {"baseline_ctr": 0.5, "mde_abs": 1e-16},  # the effect vanishes in float arithmetic
        {"baseline_ctr": 0.5, "mde_rel": 0.1, "ratio": 1e-308},  # infinitely many units
    ],
)
def test_a_sample_size_below_float_precision_is_422(client: TestClient, query: dict) -> None:
    r = client.get("/api/v1/experiments/sample-size", params=query)
    assert_error_shape(r, 422)
    assert "too small to plan for" in r.json()["error"]


def test_nan_in_a_compute_body_is_422(client: TestClient) -> None:
    r = client.post(
        "/api/v1/users/u1/what-if",
        content=b'{"ratings": {"i1": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    assert_error_shape(r, 422)
