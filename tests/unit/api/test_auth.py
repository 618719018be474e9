"""Keys with scopes: every route of the app against the one policy, on the real app in-process.

The route table below is the contract. A route added to the app without a line here fails
``test_every_route_is_in_the_table``, so nothing new is left unguarded by accident.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from backend.api.app import create_app
from backend.api.auth import required_scope
from backend.config import Settings

READ = "read-key-" + "r" * 16
WRITE = "write-key-" + "w" * 16
ADMIN = "admin-key-" + "a" * 16
KEYS = {"read": READ, "write": WRITE, "admin": ADMIN}
LOWER = {"write": "read", "admin": "write"}

# (method, route) -> the scope it needs with keys on; None: open to anyone.
EXPECTED: dict[tuple[str, str], str | None] = {
    ("GET", "/health/live"): None,
    ("GET", "/health/ready"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("GET", "/monitor"): None,
    ("GET", "/monitor/monitor.js"): None,
    ("GET", "/metrics"): None,  # RECFLOW_METRICS_PUBLIC=true, the default
    ("GET", "/openapi.json"): "read",
    ("GET", "/api/v1/users/{user_id}/recommendations"): "read",
    ("POST", "/api/v1/recommendations/batch"): "read",
    ("GET", "/api/v1/items/{item_id}/similar"): "read",
    ("GET", "/api/v1/users/{user_id}/history"): "read",
    ("POST", "/api/v1/users/{user_id}/what-if"): "read",
    ("POST", "/api/v1/scenarios/compare"): "read",
    ("POST", "/api/v1/jobs"): "write",
    ("GET", "/api/v1/jobs/kinds"): "read",
    ("GET", "/api/v1/jobs"): "read",
    ("GET", "/api/v1/jobs/{job_id}"): "read",
    ("POST", "/api/v1/jobs/{job_id}/cancel"): "write",
    ("GET", "/api/v1/experiments/sample-size"): "read",
    ("GET", "/api/v1/experiments"): "read",
    ("POST", "/api/v1/experiments/{name}/analyze"): "write",
    ("POST", "/api/v1/experiments/{name}/upload"): "write",
    ("GET", "/api/v1/experiments/{name}/analysis"): "read",
    ("GET", "/api/v1/experiments/{name}/analyses/{analysis_id}/chart.png"): "read",
    ("POST", "/api/v1/experiments"): "write",
    ("GET", "/api/v1/experiments/{name}"): "read",
    ("POST", "/api/v1/experiments/{name}/start"): "admin",
    ("POST", "/api/v1/experiments/{name}/stop"): "admin",
    ("GET", "/api/v1/items"): "read",
    ("GET", "/api/v1/items/{item_id}"): "read",
    ("PUT", "/api/v1/items/{item_id}"): "write",
    ("PATCH", "/api/v1/items/{item_id}"): "write",
    ("GET", "/api/v1/models"): "read",
    ("GET", "/api/v1/models/{model_id}"): "read",
    ("POST", "/api/v1/models/{model_id}/activate"): "admin",
    ("GET", "/api/v1/metrics/records"): "read",
    ("GET", "/api/v1/reports/pipeline"): "read",
    ("GET", "/api/v1/reports/pipeline.html"): "read",
    ("POST", "/api/v1/reports/pipeline"): "write",
    ("GET", "/api/v1/reports"): "read",
    ("GET", "/api/v1/monitoring/summary"): "read",
    ("GET", "/api/v1/monitoring/status"): "read",
    ("GET", "/api/v1/monitoring/stream"): "read",
    ("GET", "/api/v1/monitoring/alerts"): "read",
    ("GET", "/api/v1/events/schema"): "read",
    ("POST", "/api/v1/feedback"): "write",  # once the route exists
}
SAMPLE = {
    "user_id": "u1",
    "item_id": "i1",
    "job_id": "1",
    "name": "home",
    "model_id": "1",
    "analysis_id": "1",
}
# The stream ends by itself after max_s, so that a request that passes the guard returns.
QUERY = {"/api/v1/monitoring/stream": {"max_s": "0.2", "interval_s": "0.2"}}


def keyed(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(
        update={
            "api_keys": SecretStr(",".join(f"{s}:{k}" for s, k in KEYS.items())),
            **update,
        }
    )


@pytest.fixture
def guarded(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(keyed(settings)), raise_server_exceptions=False) as c:
        yield c


def app_routes(client: TestClient) -> set[tuple[str, str]]:
    found = set()
    for route in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        for method in route.methods or {"GET"}:
            if method != "HEAD" and route.path is not None:
                found.add((method, route.path))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)


def call(c: TestClient, method: str, path: str, key: str | None = None) -> tuple[int, str]:
    headers = {"X-API-Key": key} if key is not None else {}
    url = concrete(path)
    params = QUERY.get(path, {})
    if method == "POST":
        r = c.post(url, json={}, headers=headers, params=params)
    else:
        r = c.request(method, url, headers=headers, params=params)
    return r.status_code, r.text + str(r.headers)


def test_every_route_is_in_the_table(guarded: TestClient) -> None:
    routes = app_routes(guarded)
    unlisted = routes - set(EXPECTED)
    assert not unlisted, f"routes without an expected scope in this test: {sorted(unlisted)}"
    stale = set(EXPECTED) - routes - {("POST", "/api/v1/feedback")}
    assert not stale, f"the table lists routes the app does not have: {sorted(stale)}"
    for method, path in routes:
        assert required_scope(method, path) == EXPECTED[(method, path)], (method, path)


def test_every_route_refuses_a_missing_wrong_or_lower_key(
    guarded: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    for method, path in sorted(app_routes(guarded)):
        need = EXPECTED[(method, path)]
        status, text = call(guarded, method, path)
        seen.append(text)
        if need is None:
            assert status not in (401, 403), (method, path, status)
            continue
        assert status == 401, (method, path, status)
        assert f"the {need} scope" in text and "X-API-Key" in text
        status, text = call(guarded, method, path, "not-a-key-" + "x" * 16)
        seen.append(text)
        assert status == 401, (method, path, status)
        if need in LOWER:
            status, text = call(guarded, method, path, KEYS[LOWER[need]])
            seen.append(text)
            assert status == 403, (method, path, status)
            assert f"needs a key with the {need} scope" in text
        status, text = call(guarded, method, path, KEYS[need])
        seen.append(text)
        assert status not in (401, 403), (method, path, status, text)
        if need != "admin":  # a higher scope includes the lower ones
            status, text = call(guarded, method, path, ADMIN)
            assert status not in (401, 403), (method, path, status)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for key in KEYS.values():
        assert all(key not in text for text in seen), "a response echoes a key"
        assert key not in logged, "a log line holds a key"


def test_bearer_token_and_header_bytes(guarded: TestClient) -> None:
    assert guarded.get("/api/v1/jobs", headers={"Authorization": f"Bearer {READ}"}).is_success
    assert guarded.get("/api/v1/jobs", headers={"authorization": f"bearer {READ}"}).is_success
    basic = guarded.get("/api/v1/jobs", headers={"Authorization": f"Basic {READ}"})
    assert basic.status_code == 401
    # X-API-Key wins over a bearer token; a lower key in it is a 403, not a fallback.
    both = {"X-API-Key": READ, "Authorization": f"Bearer {WRITE}"}
    assert guarded.post("/api/v1/jobs", json={"kind": "echo"}, headers=both).status_code == 403
    # Any bytes in any header: a 401 for a key that is not one, never a 500.
    for raw in (b"\xff\xfe\x00", b"caf\xe9", "\u00e9\u00e8".encode("latin-1")):
        r = guarded.get("/api/v1/jobs", headers={"X-API-Key": raw})  # type: ignore[dict-item]
        assert r.status_code == 401
        r = guarded.get("/api/v1/jobs", headers={"Authorization": b"Bearer " + raw})  # type: ignore[dict-item]
        assert r.status_code == 401
        r = guarded.get("/api/v1/jobs", headers={"X-API-Key": READ, "X-Junk": raw})  # type: ignore[dict-item]
        assert r.status_code == 200
        r = guarded.post("/api/v1/jobs", json={}, headers={"X-Junk": raw})  # type: ignore[dict-item]
        assert r.status_code == 401
    r = guarded.get("/api/v1/jobs", headers={"X-API-Key": ""})
    assert r.status_code == 401 and "needs an API key" in r.json()["error"]


def test_refusals_have_the_error_shape_and_a_challenge(guarded: TestClient) -> None:
    missing = guarded.get("/api/v1/models")
    assert missing.status_code == 401
    assert missing.json() == {
        "error": "this route needs an API key with the read scope: send it as the X-API-Key "
        "header or as 'Authorization: Bearer <key>'",
        "detail": {"required_scope": "read"},
    }
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    lower = guarded.post("/api/v1/models/1/activate", headers={"X-API-Key": WRITE})
    assert lower.status_code == 403
    assert lower.json()["detail"] == {"required_scope": "admin", "key_scope": "write"}
    assert 'error="insufficient_scope"' in lower.headers["WWW-Authenticate"]


def test_hashed_keys_and_the_single_key(settings: Settings) -> None:
    secret = "a-key-stored-as-its-hash"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    hashed = settings.model_copy(update={"api_keys": SecretStr(f"write:sha256:{digest}")})
    with TestClient(create_app(hashed)) as c:
        assert c.get("/api/v1/jobs", headers={"X-API-Key": secret}).status_code == 200
        job = c.post("/api/v1/jobs", json={"kind": "echo"}, headers={"X-API-Key": secret})
        assert job.status_code == 202
        # The digest itself is not a key.
        assert c.get("/api/v1/jobs", headers={"X-API-Key": digest}).status_code == 401
        r = c.post("/api/v1/models/1/activate", headers={"X-API-Key": secret})
        assert r.status_code == 403
    # RECFLOW_API_KEY alone is one key with every scope, as before.
    single = settings.model_copy(update={"api_key": SecretStr("s3cret")})
    with TestClient(create_app(single)) as c:
        assert c.get("/api/v1/jobs").status_code == 401
        r = c.post("/api/v1/models/1/activate", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 404  # past the guard: there is no model 1


def test_metrics_follow_the_setting(settings: Settings) -> None:
    with TestClient(create_app(keyed(settings))) as c:
        assert c.get("/metrics").status_code == 200
    with TestClient(create_app(keyed(settings, metrics_public=False))) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": f"Bearer {READ}"}).status_code == 200
        assert c.get("/health/live").status_code == 200


def test_without_keys_every_route_is_open(client: TestClient) -> None:
    for method, path in sorted(app_routes(client)):
        status, _ = call(client, method, path)
        assert status not in (401, 403), (method, path, status)
    schema = client.get("/openapi.json").json()
    assert "securitySchemes" not in schema.get("components", {})


def test_openapi_declares_the_schemes_and_each_operations_scope(guarded: TestClient) -> None:
    assert guarded.get("/openapi.json").status_code == 401
    schema = guarded.get("/openapi.json", headers={"X-API-Key": READ}).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["ApiKeyHeader"]["description"],
    }
    assert schemes["BearerKey"]["scheme"] == "bearer"
    for path, item in schema["paths"].items():
        for method, op in item.items():
            need = EXPECTED[(method.upper(), path)]
            if need is None:
                assert op["security"] == []
            else:
                assert op["security"] == [{"ApiKeyHeader": [need]}, {"BearerKey": [need]}]
                assert {"401", "403"} <= set(op["responses"]), (method, path)


def test_docs_and_monitor_are_shells_that_send_the_key(guarded: TestClient) -> None:
    for page in ("/docs", "/redoc", "/monitor/monitor.js"):
        body = guarded.get(page).text
        assert "X-API-Key" in body and "sessionStorage" in body, page


def test_production_needs_a_key(tmp_path: Path) -> None:
    prod = {"env": "production", "database_url": "postgresql://db/x", "broker_url": "redis://r/0"}
    with pytest.raises(ValidationError, match=r"RECFLOW_ENV=production needs RECFLOW_API_KEYS"):
        Settings(data_dir=tmp_path, **prod)  # type: ignore[arg-type]
    assert Settings(data_dir=tmp_path, api_keys=f"read:{READ}", **prod).api_key_scopes()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"read:{READ},{WRITE}", "entry 2 must start with read:, write: or admin:"),
        (f"owner:{READ}", "entry 1 must start with read:, write: or admin:"),
        ("read:short-key", "entry 1 (read:...) needs a key of at least 16"),
        (f"read:{READ},,write:{WRITE}", "entry 2 is empty"),
        ("admin:sha256:abc123", "entry 1 (admin:sha256:...) needs the 64 hex"),
        (f"read:{READ},admin:{READ}", "entry 2 repeats the key of RECFLOW_API_KEYS entry 1"),
    ],
)
def test_a_bad_keys_entry_is_named_without_its_key(value: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(api_keys=value)  # type: ignore[arg-type]
    text = str(caught.value)
    assert message in text
    for key in (READ, WRITE, "short-key", "abc123"):
        assert key not in text
