"""POST /api/v1/feedback on a TestClient, with the embedded landing directory as the stream:
what the 202 promises is already in a fsynced landing file when the answer arrives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.config import Settings
from backend.streaming.events import Event, now_ms
from backend.streaming.validation import validate_event

URL = "/api/v1/feedback"


def feedback_files(settings: Settings) -> list[Path]:
    return sorted(settings.landing_dir.glob("feedback-*.jsonl"))


def landed(settings: Settings) -> list[Event]:
    """Every event in the landing directory's feedback files, checked by the contract."""
    out = []
    for path in feedback_files(settings):
        for line in path.read_bytes().splitlines():
            event = validate_event(line)
            assert isinstance(event, Event), line
            out.append(event)
    return out


def click(**over: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1,
        "user": "u1",
        "item": "i1",
        "type": "click",
        "ts": now_ms() - 1000,
        "experiment": "home",
        "variant": "B",
        "recommendation_id": "rec-7",
        "model_version": "als-v3",
    }
    event.update(over)
    return event


@pytest.fixture
def embedded(settings: Settings) -> Settings:
    return settings.model_copy(update={"kafka_bootstrap_servers": "", "feedback_max_batch": 5})


@pytest.fixture
def client(embedded: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(embedded)) as c:
        yield c


def test_an_accepted_batch_is_in_a_landing_file_before_the_answer(
    client: TestClient, embedded: Settings
) -> None:
    batch = [click(event_id="e-1"), click(type="view"), click(type="rating", rating=5)]
    r = client.post(URL, json={"events": batch})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 3 and body["rejected"] == []
    assert body["event_ids"][0] == "e-1"
    events = landed(embedded)
    assert [e.event_id for e in events] == body["event_ids"]
    assert [e.type for e in events] == ["click", "view", "rating"]
    assert {(e.recommendation_id, e.model_version) for e in events} == {("rec-7", "als-v3")}
    assert not list(embedded.landing_dir.glob(".*"))  # no temporary file left behind


def test_a_mixed_batch_is_accepted_in_part_with_a_reason_per_refused_event(
    client: TestClient, embedded: Settings
) -> None:
    batch = [
        click(event_id="ok-1"),
        click(type="impression"),
        click(user=""),
        42,
        click(event_id="ok-2", item="i2"),
    ]
    r = client.post(URL, json={"events": batch})
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["accepted"], body["event_ids"]) == (2, ["ok-1", "ok-2"])
    assert [(x["index"], x["reason"], x["field"]) for x in body["rejected"]] == [
        (1, "type_not_allowed", "type"),
        (2, "bad_id", "user"),
        (3, "not_json", None),
    ]
    assert [e.event_id for e in landed(embedded)] == ["ok-1", "ok-2"]


def test_a_batch_with_no_valid_event_is_a_422_and_lands_nothing(
    client: TestClient, embedded: Settings
) -> None:
    r = client.post(URL, json={"events": [click(type="impression"), click(ts="yesterday")]})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail["accepted"] == 0 and detail["event_ids"] == []
    assert [(x["index"], x["reason"]) for x in detail["rejected"]] == [
        (0, "type_not_allowed"),
        (1, "wrong_type"),
    ]
    assert feedback_files(embedded) == []


def test_too_large_or_malformed_batches_are_refused(client: TestClient, embedded: Settings) -> None:
    r = client.post(URL, json={"events": [click(event_id=f"e{i}") for i in range(6)]})
    assert r.status_code == 413 and "at most 5" in r.json()["error"]
    assert client.post(URL, json={"events": []}).status_code == 422
    assert client.post(URL, json={"items": [click()]}).status_code == 422
    assert feedback_files(embedded) == []


def test_a_retried_batch_without_event_ids_gets_the_same_ids(client: TestClient) -> None:
    batch = [click(), click(item="i9")]
    first = client.post(URL, json={"events": batch}).json()
    again = client.post(URL, json={"events": batch}).json()
    assert first["event_ids"] == again["event_ids"] and len(set(first["event_ids"])) == 2


def test_a_broker_that_is_down_is_a_503_and_nothing_is_accepted(settings: Settings) -> None:
    down = settings.model_copy(
        update={"kafka_bootstrap_servers": "127.0.0.1:1", "feedback_send_timeout_s": 1.0}
    )
    with TestClient(create_app(down)) as c:
        r = c.post(URL, json={"events": [click()]})
    assert r.status_code == 503, r.text
    assert "no event was accepted" in r.json()["error"]
    assert feedback_files(down) == []
