"""Impressions logged by serving reach a real Kafka topic whole: every event of every answer,
once, keyed by user, valid under the contract."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from backend.serving.impressions import ImpressionLogger
from backend.streaming.events import Event
from backend.streaming.producer import KafkaSink, ensure_topic
from backend.streaming.validation import validate_event
from tests.conftest import service_env

pytestmark = pytest.mark.integration


async def consume(
    bootstrap: str, topic: str, n: int, timeout_s: float = 60
) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    got: list[tuple[bytes, bytes]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(got) < n and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                got += [(r.key or b"", r.value or b"") for r in records]
    finally:
        await consumer.stop()
    return got


def test_impressions_reach_kafka_whole() -> None:
    bootstrap = service_env("RECFLOW_KAFKA_BOOTSTRAP_SERVERS")
    topic = f"impressions-{uuid.uuid4().hex[:12]}"
    assert ensure_topic(bootstrap, topic, partitions=2)
    logger = ImpressionLogger(
        KafkaSink(bootstrap, topic), capacity=10_000, batch_size=100, flush_s=0.1
    )
    logger.start()
    for k in range(50):
        answer = {
            "user": f"u{k % 7}",
            "model_version": "v1",
            "items": [{"item": f"i{j}"} for j in range(10)],
            "recommendation_id": f"r{k}",
            "experiment": "home",
            "variant": "A" if k % 2 else "B",
        }
        assert logger.log(answer, 1_700_000_000_000)
    logger.close(timeout_s=30)
    assert logger.delivered == 500 and logger.dropped == 0
    records = asyncio.run(consume(bootstrap, topic, 500))
    events = [validate_event(value) for _, value in records]
    assert all(isinstance(e, Event) for e in events)
    ids = [e.event_id for e in events if isinstance(e, Event)]
    assert sorted(ids) == sorted(f"r{k}-{j}" for k in range(50) for j in range(1, 11))
    assert all(
        key.decode() == e.user
        for (key, _), e in zip(records, events, strict=True)
        if isinstance(e, Event)
    )
