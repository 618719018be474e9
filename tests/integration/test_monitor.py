"""The live monitor on the real Kafka broker: counts, CTR, bad records, restart, broker down."""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
import typer
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from typer.testing import CliRunner

from backend.cli import streaming as streaming_cli
from backend.cli.stack import free_port
from backend.config import get_settings
from backend.monitoring.consumer import Monitor, MonitorOptions
from backend.monitoring.snapshots import MemorySnapshotStore
from backend.streaming.events import now_ms
from tests.conftest import service_env

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


@pytest.fixture
def kafka() -> str:
    return service_env("RECFLOW_KAFKA_BOOTSTRAP_SERVERS")


async def new_topic(bootstrap: str, partitions: int = 2) -> str:
    name = f"test-monitor-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def send_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i, v in enumerate(values):
            await producer.send(topic, v, key=str(i % 7).encode())
        await producer.flush()
    finally:
        await producer.stop()


def event(i: int, **over: Any) -> bytes:
    body = {"schema_version": 1, "event_id": f"e{i}", "user": f"u{i % 13}", "item": "i1"}
    body.update(type="impression", ts=now_ms(), experiment="home", variant="A")
    body.update(over)
    return orjson.dumps({k: v for k, v in body.items() if v is not None})


@contextlib.asynccontextmanager
async def running(opts: MonitorOptions) -> AsyncIterator[tuple[Monitor, MemorySnapshotStore]]:
    store = MemorySnapshotStore()
    mon = Monitor(opts, store)
    stop = asyncio.Event()
    task = asyncio.create_task(mon.run(stop))
    try:
        yield mon, store
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


def options(bootstrap: str, topic: str, group: str | None = None, **kw: Any) -> MonitorOptions:
    return MonitorOptions(
        bootstrap,
        topic=topic,
        group_id=group or f"g-{topic}",
        auto_offset_reset="earliest",
        snapshot_interval_s=0.5,
        **kw,
    )


def test_simulated_traffic_ctr_and_counts_match(
    kafka: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`recflow produce --simulate` -> Kafka -> monitor: counts exact, CTR within 4 SE."""

    async def scenario() -> None:
        topic = await new_topic(kafka, partitions=3)
        async with running(options(kafka, topic, validate_workers=1)) as (mon, store):
            monkeypatch.setenv("RECFLOW_KAFKA_BOOTSTRAP_SERVERS", kafka)
            monkeypatch.setenv("RECFLOW_KAFKA_TOPIC", topic)
            get_settings.cache_clear()
            cli = typer.Typer()
            cli.command()(streaming_cli.produce)
            args = ["--simulate", "--ctr", "A=0.05,B=0.10", "--experiment", "home"]
            args += ["--users", "5000", "--rate", "5000", "--duration", "3", "--json"]
            result = await asyncio.to_thread(CliRunner().invoke, cli, args)
            get_settings.cache_clear()
            assert result.exit_code == 0, result.output
            sent = orjson.loads(result.stdout)
            total = sent["expected"]["valid"]
            assert total == sent["sent"] > 5000
            await until(lambda: mon.totals.valid >= total, 60, "all events counted")
            await until(lambda: mon.lag_total == 0, 10, "zero lag")
            await asyncio.sleep(0.6)
            snap = store.get()
            assert snap is not None
        assert mon.totals.consumed == mon.totals.valid == total
        assert mon.totals.invalid == 0 and mon.totals.redelivered_skipped == 0
        window = snap["windows"]["1h"]
        assert window["events"] == total
        got = {v["variant"]: v for v in window["variants"]}
        for variant, want in sent["variants"].items():
            assert got[variant]["impressions"] == want["impression"]
            assert got[variant]["clicks"] == want["click"]
            p = sent["configured_ctr"][variant]
            se = math.sqrt(p * (1 - p) / want["impression"])
            assert abs(got[variant]["ctr"] - p) < 4 * se, (variant, got[variant], p, se)
        assert snap["monitor"]["state"] == "running" and snap["monitor"]["ready"] is True
        assert snap["windows"]["1m"]["latency_p99_s"] is not None

    asyncio.run(scenario())


def test_bad_records_are_counted_and_never_stop_the_monitor(kafka: str) -> None:
    async def scenario() -> None:
        topic = await new_topic(kafka)
        async with running(options(kafka, topic)) as (mon, store):
            values = [
                event(0),
                b"\xff\xfe not utf-8",
                b"[1, 2]",
                b'{"schema_version": 1, "schema_version": 1}',
                event(1, experiment=None, variant=None),  # no experiment: counted, no CTR
                event(2, variant=None),  # experiment without variant: rejected
                event(3, ts=now_ms() + 3_600_000),  # an hour ahead: beyond the allowed skew
                event(4, ts=now_ms() + 60_000),  # a minute ahead: within the skew
                event(5, ts=now_ms() - 2 * 3_600_000),  # two hours old: outside every window
                event(6, ts=now_ms() - 120_000),  # two minutes old: in 5m and 1h, not in 1m
                event(7, type="click"),
            ]
            await send_raw(kafka, topic, values)
            await until(lambda: mon.totals.consumed == len(values), 30, "every record read")
            await send_raw(kafka, topic, [event(8)])  # still consuming after the bad ones
            await until(lambda: mon.totals.consumed == len(values) + 1, 30, "the next record")
        t = mon.totals
        assert t.invalid_by_reason == {"not_json": 3, "missing_field": 1, "ts_too_far_future": 1}
        assert (t.valid, t.late, t.future, t.without_experiment) == (7, 1, 1, 1)
        w = mon.windows.summaries()
        assert (w["1m"].events, w["5m"].events, w["1h"].events) == (5, 6, 6)
        snap = store.get()
        assert snap is not None and snap["monitor"]["state"] == "stopped"
        assert snap["totals"]["invalid"] == 5

    asyncio.run(scenario())


def test_restart_resumes_from_committed_offsets_without_double_counting(kafka: str) -> None:
    async def scenario() -> None:
        topic = await new_topic(kafka)
        group = f"g-{topic}"
        await send_raw(kafka, topic, [event(i) for i in range(300)])
        async with running(options(kafka, topic, group)) as (first, _):
            await until(lambda: first.totals.consumed == 300, 30, "first batch")
        assert sum(first.committed.values()) == 300
        await send_raw(kafka, topic, [event(1000 + i, type="click") for i in range(120)])
        async with running(options(kafka, topic, group)) as (second, _):
            await until(lambda: second.totals.consumed >= 120, 30, "second batch")
            await asyncio.sleep(1.0)  # nothing else arrives: the first 300 are not re-read
        assert second.totals.consumed == 120
        assert second.windows.summary(3600).events_by_type == {"click": 120}
        assert sum(second.committed.values()) == 420

    asyncio.run(scenario())


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        return
    finally:
        writer.close()


def test_broker_down_at_start_is_reported_and_retried(kafka: str) -> None:
    """The bootstrap address answers only after a while (a TCP relay to the real broker)."""

    async def scenario() -> None:
        topic = await new_topic(kafka)
        await send_raw(kafka, topic, [event(i) for i in range(50)])
        port = free_port()
        opts = options(f"127.0.0.1:{port}", topic, backoff_initial_s=0.2, backoff_max_s=0.5)
        host, kport = kafka.split(":")

        async def relay(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            ur, uw = await asyncio.open_connection(host, int(kport))
            await asyncio.gather(_pipe(r, uw), _pipe(ur, w))

        async with running(opts) as (mon, store):
            await until(lambda: mon.connect_attempts >= 3, 20, "retries")
            snap = store.get()
            assert snap is not None
            assert snap["monitor"]["state"] == "broker_unavailable"
            assert snap["monitor"]["ready"] is False
            assert f"127.0.0.1:{port}" in snap["monitor"]["error"]
            assert "retrying" in snap["monitor"]["error"]
            server = await asyncio.start_server(relay, "127.0.0.1", port)
            try:
                await until(lambda: mon.totals.consumed == 50, 30, "events after recovery")
                await until(lambda: mon.state == "running", 5, "running")
            finally:
                server.close()

    asyncio.run(scenario())


def test_monitor_survives_a_broker_restart(kafka: str) -> None:
    """Stop and start the real broker mid-run: the monitor reconnects and counts every event
    once (the broker keeps its log and the group's committed offsets across the restart)."""
    import subprocess
    from pathlib import Path

    kafka_sh = Path(__file__).resolve().parents[2] / "scripts" / "kafka.sh"

    async def scenario() -> None:
        topic = await new_topic(kafka)
        async with running(options(kafka, topic)) as (mon, _store):
            await send_raw(kafka, topic, [event(i) for i in range(300)])
            await until(lambda: mon.totals.valid == 300, 60, "the first 300 events")
            stopped = await asyncio.to_thread(
                subprocess.run, ["bash", str(kafka_sh), "stop"], capture_output=True, text=True
            )
            assert stopped.returncode == 0, stopped.stderr
            await asyncio.sleep(3)
            started = await asyncio.to_thread(
                subprocess.run, ["bash", str(kafka_sh), "start"], capture_output=True, text=True
            )
            assert started.returncode == 0, started.stderr
            await send_raw(kafka, topic, [event(i) for i in range(300, 700)])
            await until(lambda: mon.totals.valid == 700, 120, "all 700 events after the restart")
            assert mon.totals.invalid == 0
            assert mon.state == "running"

    asyncio.run(scenario())
