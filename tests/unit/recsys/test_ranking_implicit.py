"""Ranking evaluation and tuning of implicit models on interactions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.recsys.algorithms import AlgoSpec
from backend.recsys.errors import DataError
from backend.recsys.implicit_tuning import ranking_search, tune_implicit_als
from backend.recsys.interactions import InteractionWeights, from_events, from_ratings
from backend.recsys.model import FactorModel
from backend.recsys.ranking import (
    evaluate_ranking,
    interaction_holdout,
    score_model,
    temporal_holdout,
)
from backend.recsys.search import grid_combos
from backend.recsys.synthetic import generate_clicks, generate_ratings


def test_interaction_holdout_holds_out_what_the_ratings_holdout_does() -> None:
    ratings = generate_ratings(50, 40, 800, seed=4).ratings
    interactions = from_ratings(ratings, InteractionWeights(rating_threshold=1.0))
    train, test = interaction_holdout(interactions, 3)
    held = temporal_holdout(ratings, 3)
    key = ["user", "item"]
    assert (
        test[key].sort_values(key).values.tolist()
        == held.test[key].sort_values(key).values.tolist()
    )
    assert len(train) + len(test) == len(interactions)
    with pytest.raises(DataError, match="no user has 1001 interactions"):
        interaction_holdout(interactions, 1000)


def test_users_a_model_never_saw_count_as_misses() -> None:
    model = FactorModel(
        user_ids=np.array(["a"]), item_ids=np.array(["x", "y"]), global_mean=0.0,
        user_bias=np.zeros(1), item_bias=np.array([2.0, 1.0]),
        user_factors=np.zeros((1, 0)), item_factors=np.zeros((2, 0)),
        seen_indptr=np.array([0, 0]), seen_indices=np.zeros(0, dtype=np.int64),
        item_popularity=np.zeros(2, dtype=np.int64),
    )  # fmt: skip
    relevant = pd.DataFrame({"user": ["a", "b"], "item": ["x", "x"]})
    with pytest.raises(DataError, match="every evaluated user"):
        score_model(model, relevant, 1)
    scores = score_model(model, relevant, 1, unknown_users_miss=True)
    assert scores["hit_rate"] == 0.5 and scores["ndcg"] == 0.5 and scores["precision"] == 0.5


def test_implicit_algorithms_rank_on_ratings_next_to_the_rating_models() -> None:
    ratings = generate_ratings(120, 60, 3000, seed=6).ratings
    specs = (AlgoSpec("popularity"), AlgoSpec("implicit_als", {"factors": 8}),
             AlgoSpec("item_knn"))  # fmt: skip
    report = evaluate_ranking(ratings, specs, n_test=5, k=10, threshold=4.0)
    assert [r.algorithm for r in report.results] == ["popularity", "implicit_als", "item_knn"]
    assert all(0.0 <= r.ndcg <= 1.0 and r.coverage > 0 for r in report.results)


def test_ranking_search_keeps_the_best_ndcg_and_tuning_refits_it() -> None:
    events, _ = generate_clicks(200, 100, 600, rank=4, seed=8, slope=2.0, popularity_skew=0.0)
    clicks = from_events(events)
    grid = {"factors": [4], "regularization": [0.01, 10.0], "alpha": [1.0]}
    search = ranking_search(clicks, grid_combos(grid), n_test=5, k=10)
    assert len(search.trials) == 2
    assert search.best.ndcg == max(t.ndcg for t in search.trials)
    best, model = tune_implicit_als(clicks, grid, n_test=5, k=10, seed=1)
    assert {k: best[k] for k in grid} == search.best.params and best["random_state"] == 1
    assert model.params["regularization"] == best["regularization"]
    assert model.n_users == clicks["user"].nunique()
    with pytest.raises(DataError, match="not an implicit algorithm"):
        ranking_search(clicks, [{}], algorithm="svd")
