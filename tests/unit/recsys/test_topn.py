"""Top-N of one user: ranking rule, filters before the cut, fold-in vectors and cold start."""

from __future__ import annotations

import numpy as np
import pytest

from backend.recsys.errors import (
    DataError,
    InvalidParameterError,
    UnknownItemError,
    UnknownUserError,
)
from backend.recsys.model import FactorModel
from backend.recsys.topn import popular, recommend, recommend_vector
from tests.unit.recsys.conftest import make_model, reference


@pytest.fixture(scope="module")
def model() -> FactorModel:
    return make_model()


def test_matches_brute_force_with_ties_broken_by_item_id(model: FactorModel) -> None:
    ties = 0
    for u in range(model.n_users):
        scores = model.scores(u)
        top = recommend(model, u, 10)
        assert top.items.tolist() == reference(scores, 10, set(model.seen(u).tolist()))
        assert np.array_equal(top.scores, scores[top.items])
        ties += len(set(scores[top.items].tolist())) < len(top)
    assert ties > 0, "the quantized model should produce tied scores"


def test_filters_apply_before_the_cut(model: FactorModel) -> None:
    allowed = np.zeros(model.n_items, dtype=bool)
    allowed[::3] = True
    exclude = np.array([0, 3, 6, 9, 12])
    for u in range(model.n_users):
        top = recommend(model, u, 12, exclude_items=exclude, allowed_items=allowed)
        banned = set(model.seen(u).tolist()) | set(exclude.tolist())
        assert top.items.tolist() == reference(model.scores(u), 12, banned, allowed)
        assert len(top) == 12
        assert allowed[top.items].all() and not np.isin(top.items, exclude).any()


def test_short_list_when_few_items_are_eligible(model: FactorModel) -> None:
    allowed = np.zeros(model.n_items, dtype=bool)
    allowed[[5, 50, 150]] = True
    top = recommend(model, 0, 10, exclude_seen=False, allowed_items=allowed)
    assert sorted(top.items.tolist()) == [5, 50, 150]
    none = recommend(model, 0, 10, allowed_items=np.zeros(model.n_items, dtype=bool))
    assert len(none) == 0


def test_exclude_seen_false_can_return_seen_items(model: FactorModel) -> None:
    u = int(np.argmax(np.diff(model.seen_indptr)))
    top = recommend(model, u, model.n_items, exclude_seen=False)
    assert len(top) == model.n_items
    assert top.items.tolist() == reference(model.scores(u), model.n_items, set())


def test_recommend_vector_equals_recommend_for_a_trained_user(model: FactorModel) -> None:
    u = 4
    top = recommend_vector(
        model, model.user_factors[u], model.user_bias[u], 10, seen_items=model.seen(u)
    )
    assert top.items.tolist() == recommend(model, u, 10).items.tolist()
    with pytest.raises(InvalidParameterError, match="the model has 4"):
        recommend_vector(model, np.zeros(3), 0.0, 10)


def test_popular_ranks_by_count_then_id(model: FactorModel) -> None:
    top = popular(model, 15, exclude_items=[0])
    pop = model.item_popularity
    expected = sorted((i for i in range(model.n_items) if i != 0), key=lambda i: (-pop[i], i))
    assert top.items.tolist() == expected[:15]
    assert top.scores.tolist() == pop[top.items].astype(float).tolist()


def test_raw_output(model: FactorModel) -> None:
    top = recommend(model, 1, 3)
    assert [i for i, _ in top.raw(model)] == [f"i{i}" for i in top.items]


def test_bad_requests_raise_domain_errors(model: FactorModel) -> None:
    with pytest.raises(InvalidParameterError, match="positive integer"):
        recommend(model, 0, 0)
    with pytest.raises(UnknownUserError, match="out of range"):
        recommend(model, model.n_users, 5)
    with pytest.raises(UnknownItemError, match="exclude_items"):
        recommend(model, 0, 5, exclude_items=[model.n_items])
    with pytest.raises(InvalidParameterError, match="boolean mask"):
        recommend(model, 0, 5, allowed_items=np.ones(3, dtype=bool))
    assert issubclass(UnknownUserError, DataError) and issubclass(UnknownUserError, ValueError)
