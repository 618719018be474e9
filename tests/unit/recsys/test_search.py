"""Grid and random search: every trial recorded, the best is the lowest CV RMSE, seeded."""

from __future__ import annotations

import pytest

from backend.recsys.algorithms import AlgoSpec
from backend.recsys.crossval import cross_validate
from backend.recsys.datasets import Ratings
from backend.recsys.errors import DataError
from backend.recsys.search import IntRange, LogUniform, grid_search, random_search
from backend.recsys.synthetic import generate_ratings


@pytest.fixture(scope="module")
def ratings() -> Ratings:
    return generate_ratings(120, 60, 2500, rank=3, seed=4).ratings


def test_grid_runs_every_combination_and_picks_the_lowest_rmse(ratings: Ratings) -> None:
    calls: list[float] = []
    result = grid_search(
        ratings,
        {"n_factors": [2, 8], "reg_all": [0.02, 0.2]},
        fixed={"n_epochs": 5},
        k=3,
        seed=1,
        progress=lambda f, m: calls.append(f),
    )
    assert [t.params for t in result.trials] == [
        {"n_epochs": 5, "n_factors": 2, "reg_all": 0.02},
        {"n_epochs": 5, "n_factors": 2, "reg_all": 0.2},
        {"n_epochs": 5, "n_factors": 8, "reg_all": 0.02},
        {"n_epochs": 5, "n_factors": 8, "reg_all": 0.2},
    ]
    assert result.best.rmse == min(t.rmse for t in result.trials)
    assert calls == [0.25, 0.5, 0.75, 1.0]
    assert result.total_seconds >= sum(t.wall_seconds for t in result.trials) * 0.99
    # A trial is exactly the cross-validation of its parameters.
    again = cross_validate(ratings, AlgoSpec("svd", result.best.params), k=3, seed=1)
    assert again.rmse.mean == result.best.rmse


def test_random_search_is_seeded(ratings: Ratings) -> None:
    space = {"n_factors": IntRange(2, 20), "lr_all": LogUniform(0.002, 0.02), "biased": [True]}
    one = random_search(ratings, space, n_trials=3, fixed={"n_epochs": 3}, k=2, seed=7)
    two = random_search(ratings, space, n_trials=3, fixed={"n_epochs": 3}, k=2, seed=7)
    assert [t.params for t in one.trials] == [t.params for t in two.trials]
    assert [t.rmse for t in one.trials] == [t.rmse for t in two.trials]
    for t in one.trials:
        assert 2 <= t.params["n_factors"] <= 20 and 0.002 <= t.params["lr_all"] <= 0.02


def test_a_bad_parameter_fails_before_any_trial_runs(ratings: Ratings) -> None:
    with pytest.raises(DataError, match="unknown parameter"):
        grid_search(ratings, {"n_factors": [2], "learning_rate": [0.1]})
    with pytest.raises(DataError, match="non-empty list"):
        grid_search(ratings, {"n_factors": []})
