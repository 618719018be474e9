"""Metric formulas on hand-computed cases, edge cases and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.recsys import metrics
from backend.recsys.errors import DataError


def test_rmse_mae_on_a_hand_example() -> None:
    true, est = [4.0, 2.0, 5.0], [3.0, 2.0, 3.0]
    assert metrics.rmse(true, est) == pytest.approx(math.sqrt((1 + 0 + 4) / 3))
    assert metrics.mae(true, est) == pytest.approx(1.0)


def test_mpe_sign_convention_and_zero_exclusion() -> None:
    # Under-prediction is positive: (4 - 3) / 4 = +25 %.
    assert metrics.mpe([4.0], [3.0]) == pytest.approx(25.0)
    assert metrics.mpe([2.0], [3.0]) == pytest.approx(-50.0)
    # The zero rating is left out, not turned into an infinite percentage.
    assert metrics.mpe([0.0, 4.0, 2.0], [1.0, 3.0, 3.0]) == pytest.approx((25.0 - 50.0) / 2)
    assert metrics.zero_ratings([0.0, 4.0, 0.0]) == 2


def test_empty_input_gives_none_never_nan() -> None:
    assert metrics.rmse([], []) is None
    assert metrics.mae([], []) is None
    assert metrics.mpe([], []) is None
    assert metrics.mpe([0.0, 0.0], [1.0, 2.0]) is None


def test_length_mismatch_is_a_data_error() -> None:
    with pytest.raises(DataError, match="2 true ratings but 1 estimates"):
        metrics.rmse([1.0, 2.0], [1.0])


@given(st.lists(st.tuples(st.floats(0.5, 5), st.floats(0.5, 5)), min_size=1, max_size=50))
def test_rmse_is_at_least_mae(pairs: list[tuple[float, float]]) -> None:
    true, est = zip(*pairs, strict=True)
    rmse, mae = metrics.rmse(true, est), metrics.mae(true, est)
    assert rmse is not None and mae is not None
    assert rmse >= mae - 1e-12


HITS = np.array(
    [
        [True, False, True, False],  # relevant at ranks 1 and 3, 3 relevant in total
        [False, False, False, False],  # nothing found, 2 relevant
        [False, True, False, False],  # relevant at rank 2, 1 relevant
    ]
)
N_REL = np.array([3, 2, 1])


def test_precision_recall_hit_rate() -> None:
    assert metrics.precision_at_k(HITS, 4).tolist() == [0.5, 0.0, 0.25]
    assert metrics.recall_at_k(HITS, N_REL, 4) == pytest.approx([2 / 3, 0.0, 1.0])
    assert metrics.hit_rate_at_k(HITS, 4).tolist() == [1.0, 0.0, 1.0]
    assert metrics.precision_at_k(HITS, 2).tolist() == [0.5, 0.0, 0.5]


def test_ndcg_on_a_hand_example() -> None:
    dcg0 = 1 / math.log2(2) + 1 / math.log2(4)
    idcg0 = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    expected = [dcg0 / idcg0, 0.0, (1 / math.log2(3)) / 1.0]
    assert metrics.ndcg_at_k(HITS, N_REL, 4) == pytest.approx(expected)


def test_average_precision_on_a_hand_example() -> None:
    # User 0: precision at the hits (1/1, 2/3) over min(3, 4) relevant items.
    expected = [(1 + 2 / 3) / 3, 0.0, (1 / 2) / 1]
    assert metrics.average_precision_at_k(HITS, N_REL, 4) == pytest.approx(expected)


def test_users_without_relevant_items_score_zero_not_nan() -> None:
    hits = np.zeros((1, 3), dtype=bool)
    for value in (
        metrics.recall_at_k(hits, [0], 3),
        metrics.ndcg_at_k(hits, [0], 3),
        metrics.average_precision_at_k(hits, [0], 3),
    ):
        assert value.tolist() == [0.0]


@given(st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=1, max_size=20))
def test_ranking_metrics_lie_in_the_unit_interval(rows: list[list[bool]]) -> None:
    hits = np.array(rows)
    n_rel = hits.sum(axis=1) + 1  # at least as many relevant items as hits
    for values in (
        metrics.ndcg_at_k(hits, n_rel, 5),
        metrics.average_precision_at_k(hits, n_rel, 5),
        metrics.recall_at_k(hits, n_rel, 5),
    ):
        assert np.all((values >= 0) & (values <= 1 + 1e-12))


def test_perfect_ranking_has_ndcg_and_ap_one() -> None:
    hits = np.array([[True, True, False]])
    assert metrics.ndcg_at_k(hits, [2], 3).tolist() == pytest.approx([1.0])
    assert metrics.average_precision_at_k(hits, [2], 3).tolist() == pytest.approx([1.0])


def test_catalog_coverage_ignores_padding() -> None:
    lists = np.array([[0, 1, -1], [1, 2, -1]])
    assert metrics.catalog_coverage(lists, 10) == pytest.approx(0.3)
    assert metrics.catalog_coverage(lists, 0) == 0.0
