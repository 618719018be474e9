"""The job API's contract: status codes, messages, idempotency, pagination, auth.

These run the app in-process on the embedded SQLite stack; no worker takes the jobs, which is
what lets them observe the queued state. The queue itself is tested in tests/integration.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from backend.api.app import create_app
from backend.config import Settings


def test_submit_returns_202_with_location(client: TestClient) -> None:
    r = client.post("/api/v1/jobs", json={"kind": "echo", "params": {"message": "x"}})
    assert r.status_code == 202
    job = r.json()
    assert r.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "queued"
    assert job["params"] == {"message": "x", "sleep_s": 0.0, "stages": 1, "fail": False}
    assert job["celery_task_id"]
    got = client.get(r.headers["Location"]).json()
    assert got["id"] == job["id"] and got["state"] == "queued"


def test_unknown_kind_is_422_naming_the_known_kinds(client: TestClient) -> None:
    r = client.post("/api/v1/jobs", json={"kind": "nope", "params": {}})
    assert r.status_code == 422
    assert "unknown job kind 'nope'" in r.json()["error"]
    assert "echo" in r.json()["error"]


def test_bad_params_say_which_field_and_why(client: TestClient) -> None:
    r = client.post("/api/v1/jobs", json={"kind": "echo", "params": {"sleep_s": -1, "zzz": 1}})
    assert r.status_code == 422
    msg = r.json()["error"]
    assert "params.sleep_s" in msg and "greater than or equal to 0" in msg
    assert "params.zzz" in msg and "Extra inputs are not permitted" in msg
    assert {tuple(d["loc"]) for d in r.json()["detail"]} == {
        ("params", "sleep_s"),
        ("params", "zzz"),
    }


def test_malformed_json_wrong_type_and_huge_body(client: TestClient, settings: Settings) -> None:
    r = client.post("/api/v1/jobs", content=b"{oops", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]
    r = client.post("/api/v1/jobs", content=b"kind=echo", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    big = b'{"kind": "echo", "params": {"message": "' + b"a" * settings.max_body_bytes + b'"}}'
    r = client.post("/api/v1/jobs", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["error"]
    r = client.post("/api/v1/jobs", json=["not", "an", "object"])
    assert r.status_code == 422


def test_unknown_job_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/jobs/424242").status_code == 404
    r = client.post("/api/v1/jobs/424242/cancel")
    assert r.status_code == 404 and r.json()["error"] == "job 424242 not found"


def test_idempotency_key_returns_the_same_job(client: TestClient) -> None:
    body = {"kind": "echo", "params": {"message": "once"}}
    a = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    b = client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    assert a.status_code == 202 and b.status_code == 200
    assert a.json()["id"] == b.json()["id"]
    assert client.get("/api/v1/jobs").json()["items"].__len__() == 1
    other = client.post(
        "/api/v1/jobs",
        json={"kind": "echo", "params": {"message": "twice"}},
        headers={"Idempotency-Key": "k-1"},
    )
    assert other.status_code == 409 and "different kind or params" in other.json()["error"]


def test_list_filters_and_paginates(client: TestClient) -> None:
    ids = [client.post("/api/v1/jobs", json={"kind": "echo"}).json()["id"] for _ in range(5)]
    client.post(f"/api/v1/jobs/{ids[0]}/cancel")
    page1 = client.get("/api/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page1["items"]] == [ids[4], ids[3]]
    page2 = client.get("/api/v1/jobs", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    assert [j["id"] for j in page2["items"]] == [ids[2], ids[1]]
    page3 = client.get("/api/v1/jobs", params={"limit": 2, "cursor": page2["next_cursor"]}).json()
    assert [j["id"] for j in page3["items"]] == [ids[0]] and page3["next_cursor"] is None
    cancelled = client.get("/api/v1/jobs", params={"state": "cancelled"}).json()["items"]
    assert [j["id"] for j in cancelled] == [ids[0]]
    assert client.get("/api/v1/jobs", params={"state": "weird"}).status_code == 422
    assert client.get("/api/v1/jobs", params={"kind": "weird"}).status_code == 422
    assert client.get("/api/v1/jobs", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/jobs", params={"limit": 100000}).status_code == 422
    r = client.get("/api/v1/jobs", params={"cursor": "garbage!"})
    assert r.status_code == 422 and "cursor" in r.json()["error"]


def test_cancel_queued_job_then_conflict(client: TestClient) -> None:
    job = client.post("/api/v1/jobs", json={"kind": "echo"}).json()
    r = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled" and r.json()["finished_at"]
    again = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and "already ended" in again.json()["error"]


def test_api_key_guards_reads_and_mutations(tmp_path: Path, settings: Settings) -> None:
    # With a key configured, every job route needs one, reads included
    # (tests/unit/api/test_auth.py covers every route).
    keyed = settings.model_copy(update={"api_key": SecretStr("s3cret")})
    with TestClient(create_app(keyed)) as c:
        r = c.post("/api/v1/jobs", json={"kind": "echo"})
        assert r.status_code == 401 and "X-API-Key" in r.json()["error"]
        assert (
            c.post("/api/v1/jobs", json={"kind": "echo"}, headers={"X-API-Key": "no"}).status_code
            == 401
        )
        ok = c.post("/api/v1/jobs", json={"kind": "echo"}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 202
        bearer = c.post(
            f"/api/v1/jobs/{ok.json()['id']}/cancel", headers={"Authorization": "Bearer s3cret"}
        )
        assert bearer.status_code == 200
        assert c.post(f"/api/v1/jobs/{ok.json()['id']}/cancel").status_code == 401
        assert c.get("/api/v1/jobs").status_code == 401  # reads need the key too
        assert c.get(f"/api/v1/jobs/{ok.json()['id']}").status_code == 401
        listing = c.get("/api/v1/jobs", headers={"X-API-Key": "s3cret"})
        assert listing.status_code == 200 and listing.json()["items"][0]["id"] == ok.json()["id"]
        assert c.get("/health/live").status_code == 200  # health stays open


def test_broker_down_gives_503_and_no_dangling_job(settings: Settings) -> None:
    down = settings.model_copy(
        update={"broker_url": "redis://127.0.0.1:9/0", "broker_connect_timeout_s": 0.5}
    )
    with TestClient(create_app(down)) as c:
        r = c.post("/api/v1/jobs", json={"kind": "echo"})
        assert r.status_code == 503
        assert "broker" in r.json()["error"]
        job_id = r.json()["detail"]["job_id"]
        job = c.get(f"/api/v1/jobs/{job_id}").json()
        assert job["state"] == "failed" and "broker unavailable" in job["error"]
        ready = c.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"]["ok"] is False
        assert ready.json()["checks"]["database"]["ok"] is True


def test_database_down_fails_readiness(settings: Settings) -> None:
    down = settings.model_copy(
        update={"database_url": "postgresql+psycopg://nobody:x@127.0.0.1:9/none"}
    )
    with TestClient(create_app(down)) as c:
        assert c.get("/health/live").status_code == 200
        r = c.get("/health/ready")
        assert r.status_code == 503 and r.json()["checks"]["database"]["ok"] is False


def test_job_kinds_and_openapi(client: TestClient) -> None:
    kinds = {k["name"]: k for k in client.get("/api/v1/jobs/kinds").json()}
    assert "sleep_s" in kinds["echo"]["params_schema"]["properties"]
    spec = client.get("/openapi.json").json()
    assert "/api/v1/jobs/{job_id}/cancel" in spec["paths"]
    assert spec["paths"]["/api/v1/jobs"]["post"]["description"]
    assert client.get("/nowhere").json()["error"].startswith("no such endpoint")
