"""Temporal hold-out and top-N ranking evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.recsys.algorithms import AlgoSpec, fit
from backend.recsys.datasets import ratings_from_frame
from backend.recsys.errors import DataError
from backend.recsys.ranking import evaluate_ranking, score_model, temporal_holdout
from backend.recsys.synthetic import generate_ratings


def test_holdout_takes_each_users_latest_ratings_with_deterministic_ties() -> None:
    raw = pd.DataFrame(
        {
            "user": ["a", "a", "a", "a", "b", "b", "c"],
            "item": ["1", "2", "3", "4", "1", "2", "1"],
            "rating": [5.0, 4.0, 3.0, 2.0, 1.0, 2.0, 3.0],
            "timestamp": [10, 40, 30, 30, 5, 6, 1],
        }
    )
    holdout = temporal_holdout(ratings_from_frame(raw, (1, 5)), n_test=2)
    test = holdout.test
    # a: latest is item 2 (t=40), then a tie at t=30 where the later row (item 4) is later.
    assert sorted(test.loc[test["user"] == "a", "item"]) == ["2", "4"]
    # b has 2 ratings: holding out 2 would leave no history, so b (and c) are not evaluated.
    assert set(test["user"]) == {"a"}
    assert holdout.train.n_ratings == 5
    assert len(pd.concat([holdout.train.frame, test])) == len(raw)


def test_metrics_of_a_known_model() -> None:
    ratings = generate_ratings(80, 40, 1500, seed=2).ratings
    holdout = temporal_holdout(ratings, n_test=3)
    model = fit(holdout.train, AlgoSpec("popularity"))
    relevant = holdout.test.loc[holdout.test["rating"] >= 4]
    scores = score_model(model, relevant, k=5)
    # Recompute precision@5 with a plain loop over users.
    order = np.argsort(-model.item_bias, kind="stable")
    precisions = []
    for user, group in relevant.groupby("user"):
        u = int(np.flatnonzero(model.user_ids == user)[0])
        seen = set(model.seen(u).tolist())
        top = [i for i in order if i not in seen][:5]
        wanted = set(group["item"])
        precisions.append(sum(model.item_ids[i] in wanted for i in top) / 5)
    assert scores["precision"] == pytest.approx(np.mean(precisions))
    assert 0 <= scores["coverage"] <= 1


def test_evaluate_ranking_reports_every_algorithm() -> None:
    ratings = generate_ratings(150, 80, 4000, seed=3).ratings
    report = evaluate_ranking(
        ratings,
        [AlgoSpec("svd", {"n_factors": 5, "n_epochs": 5}), AlgoSpec("baseline"),
         AlgoSpec("popularity")],
        n_test=4, k=10, threshold=4.0,
    )  # fmt: skip
    assert [r.algorithm for r in report.results] == ["svd", "baseline", "popularity"]
    assert report.n_users_evaluated > 0 and report.k == 10
    for r in report.results:
        for value in (r.precision, r.recall, r.ndcg, r.map, r.hit_rate, r.coverage):
            assert 0.0 <= value <= 1.0
        assert r.hit_rate >= r.precision
    # Structure is learnable here: every model finds relevant items for some users.
    assert all(r.hit_rate > 0 for r in report.results)


def test_nothing_relevant_or_nothing_to_hold_out() -> None:
    ratings = generate_ratings(50, 30, 600, seed=1).ratings
    with pytest.raises(DataError, match="relevance threshold 6"):
        evaluate_ranking(ratings, [AlgoSpec("popularity")], threshold=6.0)
    with pytest.raises(DataError, match="lower n_test"):
        temporal_holdout(ratings, n_test=500)
