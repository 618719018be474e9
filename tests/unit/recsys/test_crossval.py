"""k-fold cross-validation: agreement with surprise, parallel == sequential, MPE edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.recsys.algorithms import AlgoSpec
from backend.recsys.crossval import cross_validate, cross_validate_surprise, validate
from backend.recsys.datasets import Ratings, RatingsSource, load_ratings, ratings_from_frame
from backend.recsys.errors import DataError
from backend.recsys.synthetic import generate_ratings


@pytest.fixture(scope="module")
def small() -> Ratings:
    return generate_ratings(200, 120, 5000, rank=4, seed=3).ratings


def test_small_svd_agrees_with_surprise_on_ml100k_to_1e9(ml100k_dir: Path) -> None:
    ratings = load_ratings(RatingsSource("ml-100k", ml100k_dir))
    spec = AlgoSpec("svd", {"n_factors": 10, "n_epochs": 3})
    ours = cross_validate(ratings, spec, k=3, seed=4)
    theirs = cross_validate_surprise(ratings, spec, k=3, seed=4)
    np.testing.assert_allclose([f.rmse for f in ours.folds], theirs.rmse, rtol=0, atol=1e-9)
    np.testing.assert_allclose([f.mae for f in ours.folds], theirs.mae, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_default_svd_agrees_with_surprise_on_ml100k_to_1e9(ml100k_dir: Path) -> None:
    ratings = load_ratings(RatingsSource("ml-100k", ml100k_dir))
    report = validate(ratings, AlgoSpec("svd"), k=5, seed=0, baselines=(), with_surprise=True)
    assert report.surprise is not None and report.max_abs_difference is not None
    ours = report.model
    np.testing.assert_allclose(
        [f.rmse for f in ours.folds], report.surprise.rmse, rtol=0, atol=1e-9
    )
    np.testing.assert_allclose([f.mae for f in ours.folds], report.surprise.mae, rtol=0, atol=1e-9)
    assert report.max_abs_difference < 1e-9
    # Surprise's documented figure for SVD on ml-100k (5-fold) is RMSE 0.934, MAE 0.737.
    assert ours.rmse.mean == pytest.approx(0.934, abs=0.005)
    assert ours.mae.mean == pytest.approx(0.737, abs=0.005)


@pytest.mark.parametrize(
    "spec",
    [
        AlgoSpec("svd", {"n_factors": 10, "n_epochs": 5, "biased": False}),
        AlgoSpec("svdpp", {"n_factors": 5, "n_epochs": 2}),
        AlgoSpec("baseline"),
        AlgoSpec("baseline", {"method": "sgd"}),
        AlgoSpec("global_mean"),
    ],
    ids=lambda s: f"{s.name}-{'-'.join(map(str, s.params.values()))}",
)
def test_every_algorithm_agrees_with_surprise(small: Ratings, spec: AlgoSpec) -> None:
    ours = cross_validate(small, spec, k=3, seed=2)
    theirs = cross_validate_surprise(small, spec, k=3, seed=2)
    np.testing.assert_allclose([f.rmse for f in ours.folds], theirs.rmse, rtol=0, atol=1e-9)
    np.testing.assert_allclose([f.mae for f in ours.folds], theirs.mae, rtol=0, atol=1e-9)


def test_parallel_folds_equal_sequential_folds(small: Ratings) -> None:
    spec = AlgoSpec("svd", {"n_factors": 10, "n_epochs": 5})
    sequential = cross_validate(small, spec, k=4, seed=1, n_jobs=1)
    parallel = cross_validate(small, spec, k=4, seed=1, n_jobs=2)
    for name in ("rmse", "mae", "mpe"):
        assert [getattr(f, name) for f in parallel.folds] == [
            getattr(f, name) for f in sequential.folds
        ]
    assert [f.fold for f in parallel.folds] == [0, 1, 2, 3]


def test_result_has_per_fold_scores_summaries_and_times(small: Ratings) -> None:
    calls: list[float] = []
    result = cross_validate(
        small, AlgoSpec("svd", {"n_epochs": 3}), k=5, seed=0, progress=lambda f, m: calls.append(f)
    )
    assert len(result.folds) == 5 and calls == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert sum(f.n_test for f in result.folds) == small.n_ratings
    rmses = [f.rmse for f in result.folds]
    assert result.rmse.mean == pytest.approx(np.mean(rmses))
    assert result.rmse.std == pytest.approx(np.std(rmses))
    assert all(f.fit_seconds > 0 and f.test_seconds > 0 for f in result.folds)
    assert result.params["n_epochs"] == 3 and result.params["random_state"] == 0


def test_baselines_run_on_the_same_folds_and_svd_beats_them(small: Ratings) -> None:
    report = validate(small, AlgoSpec("svd", {"n_factors": 4, "n_epochs": 30}), k=3, seed=0)
    names = [b.algorithm for b in report.baselines]
    assert names == ["global_mean", "baseline"]
    sizes = [[f.n_test for f in r.folds] for r in (report.model, *report.baselines)]
    assert sizes[0] == sizes[1] == sizes[2]
    global_mean, baseline = report.baselines
    assert report.model.rmse.mean < baseline.rmse.mean < global_mean.rmse.mean


def test_mpe_excludes_zero_ratings_and_never_returns_nan() -> None:
    raw = pd.DataFrame(
        {
            "user": [f"u{k % 6}" for k in range(60)],
            "item": [f"i{k // 6}" for k in range(60)],
            "rating": [0.0] * 60,
            "timestamp": range(60),
        }
    )
    zeros = ratings_from_frame(raw, (0, 5))
    result = cross_validate(zeros, AlgoSpec("baseline"), k=3, seed=0)
    assert result.mpe.mean is None and result.mpe.std is None
    assert all(f.mpe is None for f in result.folds)
    assert sum(f.mpe_zero_ratings_excluded for f in result.folds) == 60
    assert result.rmse.mean == pytest.approx(0.0)


def test_popularity_and_bad_n_jobs_are_refused(small: Ratings) -> None:
    with pytest.raises(DataError, match="evaluate it with ranking"):
        cross_validate(small, AlgoSpec("popularity"))
    with pytest.raises(DataError, match="n_jobs"):
        cross_validate(small, AlgoSpec("baseline"), n_jobs=0)
