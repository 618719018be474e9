"""Feedback posted to the API is in a real Kafka topic when the 202 arrives: exactly the
accepted events, once each, keyed by user, valid under the contract with their new fields."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.config import Settings
from backend.db.migrate import upgrade
from backend.streaming.events import Event, now_ms
from backend.streaming.producer import ensure_topic
from backend.streaming.validation import validate_event
from tests.conftest import service_env
from tests.integration.test_impressions_kafka import consume

pytestmark = pytest.mark.integration


def test_accepted_feedback_is_in_kafka_before_the_answer(tmp_path: Path) -> None:
    bootstrap = service_env("RECFLOW_KAFKA_BOOTSTRAP_SERVERS")
    topic = f"feedback-{uuid.uuid4().hex[:12]}"
    assert ensure_topic(bootstrap, topic, partitions=2)
    settings = Settings(
        data_dir=tmp_path / "var", kafka_bootstrap_servers=bootstrap, kafka_topic=topic
    )
    settings.ensure_dirs()
    upgrade(settings.sqlalchemy_url)
    ts = now_ms() - 1000
    base = {"schema_version": 1, "item": "i1", "ts": ts, "recommendation_id": "rec-1"}
    batch = [
        {**base, "user": f"u{k}", "type": "click", "model_version": "als-v2"} for k in range(20)
    ]
    batch += [{**base, "user": "u1", "type": "impression"}, {**base, "user": "bad id"}]
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/v1/feedback", json={"events": batch})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 20
    assert [x["index"] for x in body["rejected"]] == [20, 21]
    records = asyncio.run(consume(bootstrap, topic, 20, timeout_s=30))
    events = [validate_event(value) for _, value in records]
    assert all(isinstance(e, Event) for e in events)
    got = [e for e in events if isinstance(e, Event)]
    assert sorted(e.event_id for e in got) == sorted(body["event_ids"])
    assert {(e.model_version, e.recommendation_id, e.source) for e in got} == {
        ("als-v2", "rec-1", "feedback")
    }
    assert all(key.decode() == e.user for (key, _), e in zip(records, got, strict=True))
