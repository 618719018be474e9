"""Implicit models through the train, validate and search jobs: from the lake's events or from
thresholded ratings, validated by ranking, promoted by NDCG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.config import Settings
from backend.db.session import session_scope
from backend.jobs import runner, service
from backend.recsys.artifacts import load_artifact
from backend.recsys.synthetic import generate_clicks

SYNTH = {"format": "synthetic", "n_users": 150, "n_items": 60, "n_ratings": 3_000, "seed": 3}
GOOD = {"factors": 4, "regularization": 10.0, "iterations": 10}


def write_click_lake(lake: Path) -> None:
    """Impressions and clicks of 200 users on 100 items (rank 4) as one lake partition."""
    events, _ = generate_clicks(200, 100, 600, rank=4, seed=8, slope=2.0, popularity_skew=0.0)
    table = pa.table(
        {
            "event_id": [f"e{k}" for k in range(len(events))],
            "user": events["user"].astype(str).tolist(),
            "item": events["item"].astype(str).tolist(),
            "type": events["type"].tolist(),
            "rating": pa.array([None] * len(events), type=pa.float64()),
            "ts": pa.array(events["ts"].tolist(), type=pa.timestamp("ms", tz="UTC")),
        }
    )
    folder = lake / "events" / "dt=2020-06-01" / "batch-0"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "part-0.parquet")


def run(settings: Settings, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    with session_scope(settings.sqlalchemy_url) as s:
        job_id = service.create(s, kind, params, None, settings=settings)[0].id
    runner.execute(settings, job_id)
    with session_scope(settings.sqlalchemy_url) as s:
        job = service.get_or_404(s, job_id)
        assert job.state == "succeeded", job.error
        return dict(job.result or {})


def test_implicit_als_trains_from_lake_events_and_the_gate_compares_ndcg(
    settings: Settings,
) -> None:
    write_click_lake(settings.lake_dir)
    params = {
        "data": {"format": "lake"},
        "model": {"algorithm": "implicit_als", "params": GOOD},
        "validate_ranking": {"n_test": 5, "k": 10},
    }
    first = run(settings, "train", {**params, "version": "als-1"})
    assert first["activated"] and first["activation_reason"].startswith("no active model")
    assert first["metrics"]["val_k"] == 10 and first["metrics"]["val_ndcg"] > 0.2
    model = load_artifact(settings.models_dir / "als-1").model
    assert model.implicit_feedback and model.algorithm == "implicit_als"
    assert model.n_users == 200 and model.params["regularization"] == 10.0

    # The same model again: an equal NDCG passes (higher is better, ties go to the new one).
    again = run(settings, "train", {**params, "version": "als-2"})
    assert again["activated"] and again["metrics"]["val_ndcg"] == first["metrics"]["val_ndcg"]

    # A one-factor, heavily regularised model ranks worse and is kept out.
    weak = {**params, "model": {"algorithm": "implicit_als",
                                "params": {"factors": 1, "regularization": 1e4}}}  # fmt: skip
    worse = run(settings, "train", {**weak, "version": "als-3"})
    assert worse["metrics"]["val_ndcg"] < first["metrics"]["val_ndcg"]
    assert not worse["activated"] and "kept the active model" in worse["activation_reason"]


def test_implicit_validation_reports_ranking_against_the_baselines(settings: Settings) -> None:
    result = run(
        settings,
        "validate",
        {"data": SYNTH, "model": {"algorithm": "implicit_als", "params": {"factors": 8}},
         "ranking": {"n_test": 5, "k": 10}},
    )  # fmt: skip
    assert "model" not in result and result["feedback"] == "ratings"
    ranking = result["ranking"]
    assert [r["algorithm"] for r in ranking["results"]] == [
        "implicit_als",
        "popularity",
        "item_knn",
    ]
    assert ranking["threshold"] == 0.0 and ranking["users_evaluated"] > 0
    assert result["metrics_stored"] == 18


def test_implicit_search_keeps_the_highest_ndcg(settings: Settings) -> None:
    write_click_lake(settings.lake_dir)
    result = run(
        settings,
        "search",
        {"data": {"format": "lake"}, "algorithm": "implicit_als", "strategy": "grid",
         "fixed": {"factors": 4},
         "grid": {"regularization": [1e4, 10.0]}, "ranking": {"n_test": 5, "k": 10}},
    )  # fmt: skip
    assert result["metric"] == "ndcg@10"
    assert result["best"]["params"] == {"factors": 4, "regularization": 10.0}
    scores = [t["ndcg@10"] for t in result["trials"]]
    assert scores == sorted(scores, reverse=True) and result["best"]["ndcg@10"] == scores[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"validate_k": 3}, "k-fold RMSE does not apply"),
        ({"gate_metric": "rmse"}, "no RMSE to gate on"),
        ({"feedback": {"click": -1}}, "greater than or equal to 0"),
    ],
)
def test_implicit_params_that_cannot_work_are_refused_at_submit(
    settings: Settings, extra: dict[str, Any], message: str
) -> None:
    params = {"data": SYNTH, "model": {"algorithm": "implicit_als"}, **extra}
    with session_scope(settings.sqlalchemy_url) as s, pytest.raises(Exception) as caught:
        service.create(s, "train", params, None, settings=settings)
    assert message in str(caught.value)


def test_events_need_the_lake(settings: Settings) -> None:
    params = {"data": SYNTH, "model": {"algorithm": "item_knn"}, "feedback": {"source": "events"}}
    with session_scope(settings.sqlalchemy_url) as s:
        job_id = service.create(s, "train", params, None, settings=settings)[0].id
    runner.execute(settings, job_id)
    with session_scope(settings.sqlalchemy_url) as s:
        job = service.get_or_404(s, job_id)
    assert job.state == "failed" and "set data.format to lake" in (job.error or "")
