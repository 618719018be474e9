"""Smoke test of the local Kafka broker with aiokafka.

Produces N messages (acks=all, idempotent off), consumes them in a consumer
group with manual commits, then checks that a second consumer of the same
group sees the committed offsets (nothing left to read). Exit status 0 on
success.

    .venv/bin/python scripts/check-kafka.py [--bootstrap 127.0.0.1:19092] [-n 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def run(bootstrap: str, n: int, partitions: int) -> None:
    topic = f"recflow-smoke-{uuid.uuid4().hex[:8]}"
    group = f"{topic}-group"

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
        topics = await admin.list_topics()
        assert topic in topics, f"{topic} not listed: {topics}"
    finally:
        await admin.close()

    t0 = time.perf_counter()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=str(i % 17).encode(), value=f"event-{i}".encode())
            for i in range(n)
        ]
        await producer.flush()
        for fut in futures:
            await fut
    finally:
        await producer.stop()
    t_produce = time.perf_counter() - t0

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: set[bytes] = set()
    t0 = time.perf_counter()
    try:
        deadline = time.monotonic() + 60
        while len(seen) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"FAIL: consumed only {len(seen)}/{n} messages in 60s")
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                seen.update(r.value for r in records if r.value is not None)
        await consumer.commit()
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        committed = {tp.partition: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()
    t_consume = time.perf_counter() - t0
    total = sum(v or 0 for v in committed.values())
    assert total == n, f"committed offsets {committed} sum to {total}, expected {n}"

    # Same group again: the committed offsets must hold, nothing left to read.
    consumer2 = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer2.start()
    try:
        leftover = 0
        for _ in range(3):
            batches = await consumer2.getmany(timeout_ms=1000)
            leftover += sum(len(v) for v in batches.values())
    finally:
        await consumer2.stop()
    assert leftover == 0, f"group re-read {leftover} messages after commit"

    print(
        f"OK: topic={topic} produced={n} ({t_produce:.2f}s) consumed={len(seen)} "
        f"({t_consume:.2f}s) committed={committed}"
    )


async def run_extended(bootstrap: str, partitions: int) -> None:
    """Idempotent + transactional producer, read_committed consumer and a
    two-member consumer group (join/sync/rebalance)."""
    topic = f"recflow-smoke-tx-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()

    idem = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await idem.start()
    try:
        for i in range(50):
            await idem.send_and_wait(topic, f"idem-{i}".encode())
    finally:
        await idem.stop()

    tx = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-tx")
    await tx.start()
    try:
        async with tx.transaction():
            for i in range(30):
                await tx.send(topic, f"committed-{i}".encode())
        await tx.begin_transaction()
        for i in range(20):
            await tx.send(topic, f"aborted-{i}".encode())
        await tx.abort_transaction()
    finally:
        await tx.stop()

    group = f"{topic}-group"
    members = [
        AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            enable_auto_commit=False,
        )
        for _ in range(2)
    ]
    for m in members:
        await m.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + 60
        while len(values) < 80 and time.monotonic() < deadline:
            for m in members:
                batches = await m.getmany(timeout_ms=500)
                for records in batches.values():
                    values.extend(r.value for r in records if r.value is not None)
                if batches:
                    await m.commit()
        # give a late rebalance a chance to deliver anything extra
        for m in members:
            batches = await m.getmany(timeout_ms=1000)
            for records in batches.values():
                values.extend(r.value for r in records if r.value is not None)
        assignments = [sorted(tp.partition for tp in m.assignment()) for m in members]
    finally:
        for m in members:
            await m.stop()
    aborted = [v for v in values if v.startswith(b"aborted-")]
    assert not aborted, f"read_committed consumer saw aborted records: {aborted[:3]}"
    assert len(set(values)) == 80, f"expected 80 distinct records, got {len(set(values))}"
    print(
        "OK extended: idempotent+transactional producer, read_committed, "
        f"group assignments={assignments}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", default="127.0.0.1:19092")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument(
        "--extended",
        action="store_true",
        help="also test idempotent/transactional producers and a 2-member group",
    )
    args = ap.parse_args()
    asyncio.run(run(args.bootstrap, args.n, args.partitions))
    if args.extended:
        asyncio.run(run_extended(args.bootstrap, args.partitions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
