"""The closed loop against an in-process API: simulated users from a known latent model ask for
recommendations over HTTP, click with the true probability of what they are shown, and their
clicks come back through the feedback route echoing each answer's ids."""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.config import Settings
from backend.recsys.synthetic import click_probability, latent_index, true_affinity
from backend.streaming.events import Event
from backend.streaming.loop import (
    LatentSpec,
    LoopError,
    LoopSpec,
    click_events,
    decide,
    run_loop,
)
from backend.streaming.validation import validate_event
from tests.unit.serving.test_recommendations_api import run_job

# The latent model the served model is trained on, and the simulated users come from.
LATENT = LatentSpec(users=300, items=200, ratings=12_000, rank=10, seed=3)
SYNTH = {"format": "synthetic", "n_users": LATENT.users, "n_items": LATENT.items,
         "n_ratings": LATENT.ratings, "rank": LATENT.rank, "seed": LATENT.seed}  # fmt: skip
EXPERIMENT = "loop"


@pytest.fixture(scope="module")
def data() -> Any:
    return LATENT.generate()


@pytest.fixture
def trained(settings: Settings) -> Settings:
    job = run_job(
        settings,
        "train",
        {
            "data": SYNTH,
            "version": "v1",
            "activate": "always",
            "model": {"params": {"n_factors": 10, "n_epochs": 20, "random_state": 0}},
        },
    )
    assert job["state"] == "succeeded", job["error"]
    return settings


@pytest.fixture
def client(trained: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(trained)) as c:
        yield c


def start_experiment(client: TestClient) -> None:
    r = client.post(
        "/api/v1/experiments",
        json={
            "name": EXPERIMENT,
            "variants": [
                {"name": "model", "weight": 50, "model_version": "v1"},
                {"name": "popular", "weight": 50, "strategy": "popular"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    assert client.post(f"/api/v1/experiments/{EXPERIMENT}/start").status_code == 200
    client.app.state.models.refresh()  # type: ignore[attr-defined]


def landed(settings: Settings, prefix: str) -> list[Event]:
    events = []
    for path in sorted(settings.landing_dir.glob(f"{prefix}-*.jsonl")):
        for line in path.read_bytes().splitlines():
            valid = validate_event(line)
            assert isinstance(valid, Event), valid
            events.append(valid)
    return events


def test_click_probability_is_the_logistic_of_the_true_affinity(data: Any) -> None:
    users = np.array([0, 5, 17])
    items = np.array([3, 3, 150])
    a = data.user_bias[users] + data.item_bias[items]
    a += (data.user_factors[users] * data.item_factors[items]).sum(axis=1)
    assert np.allclose(true_affinity(data, users, items), a)
    p = click_probability(data, users, items, base_ctr=0.05, slope=1.5)
    assert np.allclose(p, 1 / (1 + np.exp(-(math.log(0.05 / 0.95) + 1.5 * a))))
    # Zero slope: every item at the base CTR.
    assert np.allclose(click_probability(data, users, items, base_ctr=0.05, slope=0.0), 0.05)
    assert [latent_index(x, "i", 200) for x in ("i0", "i199", "i200", "x1", "i01", "i")] == [
        0,
        199,
        None,
        None,
        None,
        None,
    ]


def test_clicks_are_decided_by_the_seed_whatever_the_order(data: Any) -> None:
    answer = {
        "user": "u4",
        "items": [{"item": f"i{k}"} for k in range(10)] + [{"item": "elsewhere"}],
        "model_version": "v1",
        "recommendation_id": "r1",
        "experiment": EXPERIMENT,
        "variant": "model",
    }
    spec = LoopSpec(seed=7, base_ctr=0.4, slope=1.0)
    first = decide(data, spec, 4, 0, answer)
    assert np.array_equal(first.clicked, decide(data, spec, 4, 0, answer).clicked)
    # An item the latent model does not know has no probability and is never clicked.
    assert math.isnan(first.probabilities[-1]) and not first.clicked[-1]
    assert first.clicked.any()
    other = [decide(data, LoopSpec(seed=s, base_ctr=0.4, slope=1.0), 4, 0, answer) for s in (8, 9)]
    assert any(not np.array_equal(first.clicked, o.clicked) for o in other)
    events = click_events(first, "loop", 1_700_000_000_000)
    assert len(events) == int(first.clicked.sum())
    for e in events:
        valid = validate_event(orjson.dumps(e))
        assert isinstance(valid, Event), valid
        assert (valid.recommendation_id, valid.model_version) == ("r1", "v1")
        assert (valid.experiment, valid.variant, valid.type) == (EXPERIMENT, "model", "click")


def test_the_loop_clicks_with_the_true_probabilities_and_echoes_the_ids(
    trained: Settings, data: Any
) -> None:
    spec = LoopSpec(experiment=EXPERIMENT, requests_per_user=3, seed=1, concurrency=2,
                    batch_size=50)  # fmt: skip
    with TestClient(create_app(trained)) as client:
        start_experiment(client)
        summary = run_loop(client, data, spec)
    # The app is shut down: its impression buffer is flushed to the landing directory.
    n_users = LATENT.users
    assert summary.requests == 3 * n_users and summary.warmup_requests == 0
    assert summary.impressions == 10 * 3 * n_users and summary.outside == 0
    assert summary.unknown_items == 0 and summary.rejected == 0
    assert set(summary.variants) == {"model", "popular"}
    model, popular = summary.variants["model"], summary.variants["popular"]
    assert model.users | popular.users == {f"u{k}" for k in range(n_users)}
    assert set(model.model_versions) == {"v1"} and set(popular.strategies) == {"popular"}
    for tally in (model, popular):
        # Clicks are a sum of independent Bernoulli draws: within 4 standard deviations of the
        # sum of their true probabilities (variance at most that sum).
        assert abs(tally.clicks - tally.expected_clicks) < 4 * math.sqrt(tally.expected_clicks)
    # The trained model knows the users' taste: its lists are truly clicked more.
    assert model.true_ctr is not None and popular.true_ctr is not None
    assert model.true_ctr > 1.5 * popular.true_ctr
    assert 0.005 < popular.true_ctr < 0.1
    # Batches: each of at most batch_size + one answer's clicks, all accepted.
    assert summary.clicks_sent == model.clicks + popular.clicks
    assert summary.feedback_batches >= math.ceil(summary.clicks_sent / (50 + spec.n))
    assert summary.feedback_batches > 1
    impressions = landed(trained, "impressions")
    clicks = landed(trained, "feedback")
    assert len(impressions) == summary.impressions
    assert len(clicks) == summary.clicks_sent == len({c.event_id for c in clicks})
    shown = {(e.recommendation_id, e.item): e for e in impressions}
    for c in clicks:
        seen = shown[(c.recommendation_id, c.item)]
        assert c.type == "click" and c.source == "loop" and c.user == seen.user
        assert (c.experiment, c.variant, c.model_version) == (
            seen.experiment,
            seen.variant,
            seen.model_version,
        )


def test_without_an_experiment_the_loop_runs_on_the_active_model(
    client: TestClient, data: Any
) -> None:
    summary = run_loop(client, data, LoopSpec(users=40, n=5, seed=2))
    assert summary.requests == 40 and summary.impressions == 200
    assert set(summary.variants) == {"-"}
    assert summary.variants["-"].model_versions == {"v1": 200}


def test_an_experiment_serving_never_runs_is_an_error(client: TestClient, data: Any) -> None:
    with pytest.raises(LoopError, match="did not run experiment 'absent'"):
        run_loop(client, data, LoopSpec(experiment="absent", users=5, wait_s=0.3))


def test_the_cli_runs_the_loop_against_the_configured_api(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer
    from typer.testing import CliRunner

    from backend.cli import jobs
    from backend.cli import streaming as streaming_cli

    start_experiment(client)
    monkeypatch.setattr(jobs, "client", lambda api: SimpleNamespace(http=client))
    cli = typer.Typer()
    cli.command()(streaming_cli.simulate_loop)
    args = ["--experiment", EXPERIMENT, "--users", "60", "--n", "5", "--seed", "3", "--json"]
    args += ["--latent-users", str(LATENT.users), "--latent-items", str(LATENT.items)]
    args += ["--latent-ratings", str(LATENT.ratings), "--latent-rank", str(LATENT.rank)]
    args += ["--latent-seed", str(LATENT.seed)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    assert out["requests"] == 60 and out["impressions"] == 300 and out["rejected"] == 0
    assert set(out["variants"]) == {"model", "popular"}
    assert sum(v["clicks"] for v in out["variants"].values()) == out["clicks_sent"]
    # The same seed and answers: the same clicks.
    again = orjson.loads(CliRunner().invoke(cli, args).stdout)
    assert [v["clicks"] for v in again["variants"].values()] == [
        v["clicks"] for v in out["variants"].values()
    ]
