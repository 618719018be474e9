"""The closed loop on the real services: PostgreSQL, Redis, Kafka and a Celery worker process.

A model is trained on the ratings of a known latent-factor model; an experiment puts it against
the popularity list; simulated users of the same latent model ask the API for recommendations
over HTTP and click with the true probability of what they are shown; serving logs the
impressions to Kafka and the clicks go there through the feedback route. The Kafka monitor shows
both variants' CTRs, the ingestion puts every impression in the lake, and the A/B job on the lake
finds the model better (p < 0.01) with no sample ratio mismatch.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pytest

from backend.cli.stack import running_stack
from backend.config import Settings
from backend.lake.readers import read_events
from backend.monitoring.consumer import Monitor, MonitorOptions
from backend.monitoring.snapshots import store_for
from backend.streaming.loop import LatentSpec, LoopSpec, run_loop
from backend.streaming.producer import ensure_topic
from tests.conftest import service_env
from tests.integration.stacks import prepared, stack_env

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

LATENT = LatentSpec()  # the demo's data: 600 users, 400 items, 30,000 ratings, rank 8


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.3)


def run_job(client: httpx.Client, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/api/v1/jobs", json={"kind": kind, "params": params})
    assert r.status_code in (200, 201, 202), r.text
    job_id = r.json()["id"]
    job: dict[str, Any] = {}

    def ended() -> bool:
        nonlocal job
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        return job["state"] in ("succeeded", "failed", "cancelled")

    until(ended, 600, f"{kind} job {job_id}")
    assert job["state"] == "succeeded", job.get("error")
    return job


@contextmanager
def kafka_monitor(settings: Settings, bootstrap: str, topic: str) -> Iterator[None]:
    """The live monitor on the topic, publishing where the API reads its summary."""
    opts = MonitorOptions(
        bootstrap,
        topic=topic,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        snapshot_interval_s=0.5,
    )
    mon = Monitor(opts, store_for(settings))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(mon.run(stop),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


def monitored(client: httpx.Client, experiment: str) -> dict[str, dict[str, Any]]:
    r = client.get("/api/v1/monitoring/summary", params={"window": "1h"})
    if r.status_code != 200:
        return {}
    return {v["variant"]: v for v in r.json()["variants"] if v["experiment"] == experiment}


def test_the_trained_model_beats_popular_in_the_closed_loop(tmp_path: Path) -> None:
    bootstrap = service_env("RECFLOW_KAFKA_BOOTSTRAP_SERVERS")
    jars = service_env("RECFLOW_SPARK_JARS_DIR")
    topic = f"loop-{uuid.uuid4().hex[:10]}"
    assert ensure_topic(bootstrap, topic, partitions=2)
    data_dir = tmp_path / "var"
    redis = service_env("RECFLOW_REDIS_URL").rsplit("/", 1)[0]
    env = stack_env("services", data_dir) | {
        # Redis databases of its own: the session's services stack (tests/integration/conftest.py)
        # runs a worker on the shared ones, which would take this stack's jobs and run them
        # against another data dir.
        "RECFLOW_BROKER_URL": f"{redis}/8",
        "RECFLOW_RESULT_BACKEND": f"{redis}/9",
        "RECFLOW_REDIS_URL": f"{redis}/10",
        "RECFLOW_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "RECFLOW_KAFKA_TOPIC": topic,
        "RECFLOW_SPARK_JARS_DIR": jars,
        "RECFLOW_SERVING_REFRESH_S": "0.5",
    }
    settings = prepared(env)
    name = "loop"
    with (
        running_stack(data_dir / "logs", env=env, worker_concurrency=2) as stack,
        stack.client(timeout=60) as client,
        kafka_monitor(settings, bootstrap, topic),
    ):
        synthetic = {
            "format": "synthetic",
            "n_users": LATENT.users,
            "n_items": LATENT.items,
            "n_ratings": LATENT.ratings,
            "rank": LATENT.rank,
            "seed": LATENT.seed,
        }
        trained = run_job(
            client,
            "train",
            {
                "data": synthetic,
                "version": "loop-v1",
                "activate": "always",
                "model": {"params": {"n_factors": 20, "n_epochs": 25, "random_state": 0}},
            },
        )
        assert trained["result"]["activated"] is True
        variants = [
            {"name": "model", "weight": 50, "model_version": "loop-v1"},
            {"name": "popular", "weight": 50, "strategy": "popular"},
        ]
        r = client.post("/api/v1/experiments", json={"name": name, "variants": variants})
        assert r.status_code == 201, r.text
        assert client.post(f"/api/v1/experiments/{name}/start").status_code == 200

        summary = run_loop(
            client, LATENT.generate(), LoopSpec(experiment=name, requests_per_user=2, seed=4)
        )
        assert summary.requests == 2 * LATENT.users and summary.rejected == 0
        assert summary.outside == 0 and summary.unknown_items == 0
        shown = {k: v for k, v in summary.variants.items()}
        assert set(shown) == {"model", "popular"}
        model, popular = shown["model"], shown["popular"]
        assert model.true_ctr is not None and popular.true_ctr is not None
        assert model.true_ctr > popular.true_ctr
        assert model.model_versions == {"loop-v1": model.impressions}

        # The monitor counts every impression and click of both variants, from Kafka.
        until(
            lambda: (
                {k: (v["impressions"], v["clicks"]) for k, v in monitored(client, name).items()}
                == {k: (v.impressions, v.clicks) for k, v in shown.items()}
            ),
            90,
            "the monitor to count the loop's impressions and clicks",
        )
        live = monitored(client, name)
        for variant, tally in shown.items():
            assert live[variant]["ctr"] == pytest.approx(tally.clicks / tally.impressions)

        ingest = run_job(client, "ingest", {"source": "kafka"})
        assert ingest["result"]["quarantined_total"] == 0
        events = read_events(
            settings.lake_dir,
            columns=["type", "variant", "model_version"],
            filter=pc.field("experiment") == name,
        )
        by_type = events["type"].value_counts().to_dict()
        assert by_type == {"impression": summary.impressions, "click": summary.clicks_sent}

        job = run_job(
            client,
            "abtest",
            {"experiment": name, "source": "lake", "control": "popular", "alpha": 0.01},
        )
        result = job["result"]
        assert result["metric"] == "ctr"
        assert result["srm"]["mismatch"] is False
        (comparison,) = result["comparisons"]
        assert (comparison["treatment"], comparison["control"]) == ("model", "popular")
        assert comparison["difference"]["estimate"] > 0
        assert comparison["p_value"] < 0.01 and comparison["significant"] is True
        units = {v["variant"]: v for v in result["variants"]}
        for variant, tally in shown.items():
            assert units[variant]["impressions"] == tally.impressions
            assert units[variant]["clicks"] == tally.clicks
            assert units[variant]["units"] == len(tally.users)
