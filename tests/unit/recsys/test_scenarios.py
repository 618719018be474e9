"""Scenarios: one user's lists under several models, compared by raw item id."""

from __future__ import annotations

import numpy as np
import pytest

from backend.recsys.errors import InvalidParameterError, UnknownUserError
from backend.recsys.model import FactorModel
from backend.recsys.scenarios import ScenarioComparison, compare_scenarios, overlap
from backend.recsys.topn import recommend


def _model(item_ids: list[str], item_bias: list[float], users: list[str]) -> FactorModel:
    n_items, n_users = len(item_ids), len(users)
    return FactorModel(
        user_ids=np.array(users),
        item_ids=np.array(item_ids),
        global_mean=3.0,
        user_bias=np.zeros(n_users),
        item_bias=np.array(item_bias, dtype=float),
        user_factors=np.zeros((n_users, 0)),
        item_factors=np.zeros((n_items, 0)),
        seen_indptr=np.zeros(n_users + 1, dtype=np.int64),
        seen_indices=np.zeros(0, dtype=np.int64),
        item_popularity=np.arange(n_items, dtype=np.int64),
    )


def test_lists_and_pairwise_overlap_by_raw_id() -> None:
    # The same catalogue in a different inner order: identical rankings by raw id.
    a = _model(["x", "y", "z", "w"], [0.4, 0.3, 0.2, 0.1], ["alice"])
    b = _model(["w", "z", "y", "x"], [0.1, 0.2, 0.3, 0.4], ["alice"])
    c = _model(["x", "y", "z", "w"], [0.1, 0.2, 0.3, 0.4], ["alice"])
    result = compare_scenarios({"a": a, "b": b, "c": c}, "alice", 2)
    assert isinstance(result, ScenarioComparison)
    assert [s.items for s in result.lists] == [("x", "y"), ("x", "y"), ("w", "z")]
    assert [s.source for s in result.lists] == ["model"] * 3
    assert result.lists[0].scores == pytest.approx((3.4, 3.3))
    pairs = {(p.a, p.b): p for p in result.overlaps}
    assert set(pairs) == {("a", "b"), ("a", "c"), ("b", "c")}
    assert pairs["a", "b"].jaccard == 1.0 and pairs["a", "b"].overlap_at_n == 1.0
    assert pairs["a", "c"].common == 0 and pairs["a", "c"].jaccard == 0.0
    assert result.lists[0].items == tuple(a.item_ids[recommend(a, 0, 2).items].tolist())


def test_overlap_formulas() -> None:
    assert overlap(("a", "b", "c"), ("b", "c", "d"), 3) == (2, 0.5, pytest.approx(2 / 3))
    assert overlap((), (), 5) == (0, 1.0, 0.0)


def test_unknown_user_falls_back_to_popular_in_that_model() -> None:
    a = _model(["x", "y", "z"], [0.0, 0.5, 0.1], ["alice"])
    b = _model(["x", "y", "z"], [0.0, 0.5, 0.1], ["bob"])
    result = compare_scenarios({"a": a, "b": b}, "alice", 2)
    assert [s.source for s in result.lists] == ["model", "popular"]
    assert result.lists[1].items == ("z", "y")
    with pytest.raises(UnknownUserError, match="none of the models"):
        compare_scenarios({"b": b}, "alice", 2)


def test_bad_requests() -> None:
    a = _model(["x"], [0.0], ["alice"])
    with pytest.raises(InvalidParameterError, match="at least one model"):
        compare_scenarios({}, "alice", 2)
    with pytest.raises(InvalidParameterError, match="positive integer"):
        compare_scenarios({"a": a}, "alice", 0)
