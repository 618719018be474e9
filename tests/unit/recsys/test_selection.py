"""The ranking rule on any score vector: ties by index, non-finite scores never selected."""

from __future__ import annotations

import numpy as np

from backend.recsys.batch import recommend_many
from backend.recsys.model import FactorModel
from backend.recsys.selection import rank_scores
from backend.recsys.topn import recommend
from tests.unit.recsys.conftest import make_model


def test_all_scores_equal_ranks_by_id() -> None:
    flat = make_model(n_users=2, n_items=500, k=0, seed=1, seen_per_user=0)
    flat = FactorModel(**{**flat.__dict__, "item_bias": np.zeros(500), "user_bias": np.zeros(2)})
    assert recommend(flat, 0, 5).items.tolist() == [0, 1, 2, 3, 4]
    assert recommend_many(flat, [1], 5).items[0].tolist() == [0, 1, 2, 3, 4]


def test_rank_scores_treats_non_finite_as_ineligible() -> None:
    top = rank_scores([1.0, np.nan, 3.0, np.inf, 3.0], 5)
    assert top.items.tolist() == [2, 4, 0]
