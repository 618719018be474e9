"""Item similarity: cosine on item factors, the item itself excluded, zero vectors without NaN."""

from __future__ import annotations

import numpy as np
import pytest

from backend.recsys.errors import InvalidParameterError, UnknownItemError
from backend.recsys.model import FactorModel
from backend.recsys.similar import SimilarityIndex, similar_items, similarity_index


def _model(item_factors: np.ndarray) -> FactorModel:
    n_items = item_factors.shape[0]
    return FactorModel(
        user_ids=np.array(["u0"]),
        item_ids=np.array([f"i{i}" for i in range(n_items)]),
        global_mean=3.0,
        user_bias=np.zeros(1),
        item_bias=np.zeros(n_items),
        user_factors=np.zeros((1, item_factors.shape[1])),
        item_factors=item_factors,
        seen_indptr=np.array([0, 0]),
        seen_indices=np.zeros(0, dtype=np.int64),
        item_popularity=np.zeros(n_items, dtype=np.int64),
    )


def test_cosine_ranking_excludes_the_item_itself() -> None:
    rng = np.random.default_rng(5)
    q = rng.normal(size=(300, 8))
    model = _model(q)
    top = similar_items(model, 17, 10)
    cos = (q @ q[17]) / (np.linalg.norm(q, axis=1) * np.linalg.norm(q[17]))
    cos[17] = -np.inf
    expected = sorted(range(300), key=lambda i: (-cos[i], i))[:10]
    assert top.items.tolist() == expected
    assert np.allclose(top.scores, cos[expected])
    assert 17 not in top.items


def test_zero_vectors_score_zero_not_nan() -> None:
    q = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [-1.0, 0.0], [0.0, 0.0]])
    model = _model(q)
    top = similar_items(model, 0, 4)
    assert top.items.tolist() == [2, 1, 4, 3]
    assert np.allclose(top.scores, [np.sqrt(0.5), 0.0, 0.0, -1.0])
    from_zero = similar_items(model, 1, 4)
    assert not np.isnan(from_zero.scores).any()
    assert from_zero.items.tolist() == [0, 2, 3, 4]


def test_filters_and_cache() -> None:
    q = np.random.default_rng(1).normal(size=(50, 4))
    model = _model(q)
    index = similarity_index(model)
    assert index is similarity_index(model)
    assert isinstance(index, SimilarityIndex) and not index.unit.flags.writeable
    allowed = np.zeros(50, dtype=bool)
    allowed[:10] = True
    top = similar_items(model, 3, 20, exclude_items=[4], allowed_items=allowed)
    assert set(top.items.tolist()) == set(range(10)) - {3, 4}


def test_errors() -> None:
    model = _model(np.ones((5, 2)))
    with pytest.raises(UnknownItemError, match="out of range"):
        similar_items(model, 5, 3)
    with pytest.raises(UnknownItemError, match="exclude_items"):
        similar_items(model, 0, 3, exclude_items=[9])
    with pytest.raises(InvalidParameterError, match="no item factors"):
        similar_items(_model(np.zeros((5, 0))), 0, 3)
