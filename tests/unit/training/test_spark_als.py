from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.config import Settings
from backend.pipeline.als import prepare
from backend.recsys.algorithms import ALGORITHMS, AlgoSpec
from backend.recsys.artifacts import load_artifact
from backend.recsys.errors import DataError
from backend.training import spark_als, train
from backend.training.sources import RatingsParams
from backend.training.spark_als import (
    als_params,
    search_als,
    validate_als,
)
from tests.unit.training.test_implicit_jobs import run, write_click_lake


def test_als_is_an_algorithm_with_spark_parameters() -> None:
    assert "als" in ALGORITHMS
    params = als_params(AlgoSpec("als", {"rank": 4, "implicit": True, "alpha": 3.0}))
    assert (params.rank, params.implicit, params.alpha, params.seed) == (4, True, 3.0, 0)
    assert params.max_iter == 10 and params.reg_param == 0.1
    with pytest.raises(DataError, match="unknown parameter"):
        AlgoSpec("als", {"n_factors": 4})


def test_the_train_job_validates_and_fits_explicit_and_implicit_als(settings: Settings) -> None:
    settings = settings.model_copy(update={"spark_master": "local[2]", "als_partitions": 2})
    data = {"format": "synthetic", "n_users": 60, "n_items": 40, "n_ratings": 1200, "rank": 3}
    result = run(
        settings,
        "train",
        {"data": data, "version": "als-explicit", "validate_k": 3,
         "model": {"algorithm": "als", "params": {"rank": 3, "max_iter": 8, "reg_param": 0.05}}},
    )  # fmt: skip
    metrics = result["metrics"]
    assert metrics["cv_k"] == 3 and 0 < metrics["cv_rmse"] < 1.5 and np.isfinite(metrics["cv_mae"])
    model = load_artifact(settings.models_dir / "als-explicit").model
    assert model.algorithm == "als" and model.params["feedback"] == "explicit"
    assert model.n_users == 60 and model.item_factors.shape[1] == 3
    result = run(
        settings,
        "train",
        {"data": data, "version": "als-implicit",
         "model": {"algorithm": "als", "params": {"rank": 3, "implicit": True, "alpha": 2.0}}},
    )  # fmt: skip
    assert "cv_rmse" not in result["metrics"]
    model = load_artifact(settings.models_dir / "als-implicit").model
    assert model.params["feedback"] == "implicit"


def test_validate_als_gives_a_row_per_fold_and_the_means(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, spark_master="local[2]", als_partitions=2)
    data = RatingsParams(format="synthetic", n_users=60, n_items=40, n_ratings=1200, rank=3)
    cv, rows = validate_als(data, AlgoSpec("als", {"rank": 3}), settings, k=2)
    assert {(r[1], r[2]) for r in rows} == {
        (fold, name) for fold in (0, 1, None) for name in ("rmse", "mae")
    }
    assert cv.means["rmse"] == pytest.approx(np.mean([f.metrics["rmse"] for f in cv.folds]))


def _local(settings: Settings) -> Settings:
    return settings.model_copy(update={"spark_master": "local[1]", "als_partitions": 1})


def test_search_als_runs_every_trial_over_one_prepared_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path, spark_master="local[1]", als_partitions=1)
    data = RatingsParams(format="synthetic", n_users=40, n_items=30, n_ratings=500, rank=2)
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return prepare(*args, **kwargs)

    monkeypatch.setattr(spark_als, "prepare", counted)
    trials = search_als(
        data, [{"rank": 1}, {"rank": 3}], settings,
        fixed={"implicit": True, "max_iter": 4}, n_test=3, top_k=5,
    )  # fmt: skip
    assert calls == [1]
    assert [t.params.rank for t in trials] == [1, 3]
    assert all(0.0 <= t.metrics["ndcg"] <= 1.0 for t in trials)
    explicit = search_als(data, [{"reg_param": 0.05}], settings, fixed={"rank": 2}, k=2)
    assert 0 < explicit[0].metrics["rmse"] < 2 and explicit[0].metrics["rmse_std"] >= 0


def test_the_search_job_scores_implicit_als_by_holdout_ndcg(settings: Settings) -> None:
    settings = _local(settings)
    write_click_lake(settings.lake_dir)
    result = run(
        settings,
        "search",
        {"data": {"format": "lake"}, "algorithm": "als", "strategy": "grid",
         "fixed": {"implicit": True, "max_iter": 4, "alpha": 2.0},
         "grid": {"rank": [1, 4]}, "ranking": {"n_test": 5, "k": 10}},
    )  # fmt: skip
    assert result["metric"] == "ndcg@10" and len(result["trials"]) == 2
    scores = [t["ndcg@10"] for t in result["trials"]]
    assert scores == sorted(scores, reverse=True) and result["best"]["ndcg@10"] == scores[0]
    assert result["best"]["params"]["implicit"] is True
    # The same trial shape as the implicit package's search (test_search_job).
    assert list(result["trials"][0]) == [
        "index", "params", "ndcg@10", "precision@10", "recall@10", "map@10", "hit_rate",
        "coverage", "fit_seconds",
    ]  # fmt: skip


def test_the_search_job_scores_explicit_als_by_cv_rmse(settings: Settings) -> None:
    settings = _local(settings)
    result = run(
        settings,
        "search",
        {"data": {"format": "synthetic", "n_users": 40, "n_items": 30, "n_ratings": 500},
         "algorithm": "als", "strategy": "grid", "fixed": {"rank": 2, "max_iter": 4},
         "grid": {"reg_param": [0.05, 50.0]}, "k": 2},
    )  # fmt: skip
    rmses = [t["rmse"] for t in result["trials"]]
    assert rmses == sorted(rmses) and result["best"]["params"]["reg_param"] == 0.05
    assert set(result["trials"][0]) == {
        "index", "params", "rmse", "rmse_std", "mae", "mpe", "fit_seconds", "wall_seconds",
    }  # fmt: skip


def test_train_als_on_the_lake_reads_it_with_spark_only(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _local(settings)
    write_click_lake(settings.lake_dir)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the lake was read by pandas")

    monkeypatch.setattr(train, "load", refuse)
    monkeypatch.setattr(train, "load_interactions", refuse)
    monkeypatch.setattr(spark_als, "load", refuse)
    result = run(
        settings,
        "train",
        {"data": {"format": "lake"}, "version": "spark-als-1",
         "model": {"algorithm": "als", "params": {"rank": 4, "implicit": True, "alpha": 2.0}},
         "validate_ranking": {"n_test": 5, "k": 10}},
    )  # fmt: skip
    assert result["activated"], result["activation_reason"]  # implicit ALS gates on NDCG
    metrics = result["metrics"]
    assert metrics["val_k"] == 10 and 0 < metrics["val_ndcg"] <= 1
    assert metrics["n_ratings"] > 0 and metrics["n_users"] == 200
    model = load_artifact(settings.models_dir / "spark-als-1").model
    assert model.algorithm == "als" and model.params["feedback"] == "implicit"
