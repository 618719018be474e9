"""The promotion gate: RMSE (lower passes) or hold-out NDCG@k (higher passes)."""

from __future__ import annotations

from backend.registry.service import gate_allows


def test_rmse_gate_lets_an_equal_or_lower_rmse_through() -> None:
    assert gate_allows({"cv_rmse": 0.90}, {"cv_rmse": 0.91})[0]
    assert gate_allows({"cv_rmse": 0.91}, {"cv_rmse": 0.91})[0]
    allowed, reason = gate_allows({"cv_rmse": 0.92}, {"cv_rmse": 0.91})
    assert not allowed and "kept the active model" in reason
    assert not gate_allows({}, None)[0]
    assert gate_allows({"cv_rmse": 1.5}, None)[0]


def test_ndcg_gate_lets_an_equal_or_higher_ndcg_through() -> None:
    old = {"val_ndcg": 0.12, "val_k": 10}
    assert gate_allows({"val_ndcg": 0.13, "val_k": 10}, old, "ndcg")[0]
    assert gate_allows({"val_ndcg": 0.12, "val_k": 10}, old, "ndcg")[0]
    allowed, reason = gate_allows({"val_ndcg": 0.11, "val_k": 10}, old, "ndcg")
    assert (
        not allowed and reason == "validation NDCG@10 0.1100 < active 0.1200; kept the active model"
    )


def test_ndcg_gate_needs_the_new_score_and_ignores_an_incomparable_active_one() -> None:
    allowed, reason = gate_allows({"cv_rmse": 0.9}, {"val_ndcg": 0.1, "val_k": 10}, "ndcg")
    assert not allowed and "validate_ranking" in reason
    # An active model scored at another k, or by RMSE only, is no bar.
    assert gate_allows({"val_ndcg": 0.01, "val_k": 10}, {"val_ndcg": 0.5, "val_k": 20}, "ndcg")[0]
    assert gate_allows({"val_ndcg": 0.01, "val_k": 10}, {"cv_rmse": 0.8}, "ndcg")[0]
    assert gate_allows({"val_ndcg": 0.01, "val_k": 10}, None, "ndcg")[0]
