"""The search job's answer and stored metrics for rating models and implicit models: the same
trial shapes whichever runner produced them."""

from __future__ import annotations

from typing import Any

from backend.config import Settings
from backend.db.session import session_scope
from backend.jobs import runner, service
from backend.registry import repository as repo
from tests.unit.training.test_implicit_jobs import write_click_lake

SYNTH = {"format": "synthetic", "n_users": 120, "n_items": 80, "n_ratings": 3_000, "seed": 3}


def run(settings: Settings, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    with session_scope(settings.sqlalchemy_url) as s:
        job_id = service.create(s, "search", params, None, settings=settings)[0].id
    runner.execute(settings, job_id)
    with session_scope(settings.sqlalchemy_url) as s:
        job = service.get_or_404(s, job_id)
        assert job.state == "succeeded", job.error
        return job_id, dict(job.result or {})


def stored(settings: Settings, job_id: int) -> list[tuple[str, str, float | None]]:
    with session_scope(settings.sqlalchemy_url) as s:
        return [(m.subject, m.name, m.value) for m in repo.metrics(s, job_id=job_id)]


def test_a_rating_search_lists_its_trials_by_rmse_and_stores_rmse_and_mae(
    settings: Settings,
) -> None:
    job_id, result = run(
        settings,
        {"data": SYNTH, "algorithm": "svd", "strategy": "grid", "k": 2,
         "fixed": {"n_epochs": 5}, "grid": {"n_factors": [2, 8], "reg_all": [0.02, 0.5]}},
    )  # fmt: skip
    assert [result[key] for key in ("algorithm", "strategy", "k")] == ["svd", "grid", 2]
    trials = result["trials"]
    assert len(trials) == 4 and sorted(t["index"] for t in trials) == [0, 1, 2, 3]
    assert set(trials[0]) == {
        "index", "params", "rmse", "rmse_std", "mae", "mpe", "fit_seconds", "wall_seconds",
    }  # fmt: skip
    rmses = [t["rmse"] for t in trials]
    assert rmses == sorted(rmses)
    best = result["best"]
    assert (best["index"], best["rmse"], best["mae"]) == (
        trials[0]["index"],
        trials[0]["rmse"],
        trials[0]["mae"],
    )
    assert best["params"] == trials[0]["params"] and best["params"]["n_epochs"] == 5
    by_index = {t["index"]: t for t in trials}
    want = [(f"trial-{i}", name, by_index[i][name]) for i in range(4) for name in ("rmse", "mae")]
    assert stored(settings, job_id) == want
    assert result["total_seconds"] > 0


def test_an_implicit_search_stores_ndcg_and_precision_per_trial(settings: Settings) -> None:
    write_click_lake(settings.lake_dir)
    job_id, result = run(
        settings,
        {"data": {"format": "lake"}, "algorithm": "implicit_als", "strategy": "grid",
         "fixed": {"factors": 4}, "grid": {"regularization": [1e4, 10.0]},
         "ranking": {"n_test": 5, "k": 10}},
    )  # fmt: skip
    trials = result["trials"]
    assert list(trials[0]) == [
        "index", "params", "ndcg@10", "precision@10", "recall@10", "map@10", "hit_rate",
        "coverage", "fit_seconds",
    ]  # fmt: skip
    assert result["best"] == {
        "params": trials[0]["params"],
        "ndcg@10": trials[0]["ndcg@10"],
        "index": trials[0]["index"],
    }
    by_index = {t["index"]: t for t in trials}
    want = [
        (f"trial-{i}", name, by_index[i][name])
        for i in range(2)
        for name in ("ndcg@10", "precision@10")
    ]
    assert stored(settings, job_id) == want
