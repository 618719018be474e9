"""Fold-in of implicit models: the implicit-ALS normal equations, checked against a direct
solve and the implicit package's own ``recalculate_user``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from backend.recsys.algorithms import AlgoSpec
from backend.recsys.errors import InvalidRatingsError
from backend.recsys.foldin import fold_in, fold_in_implicit, recommend_folded
from backend.recsys.implicit_models import als_confidence, fit_implicit, implicit_package
from backend.recsys.interactions import InteractionWeights, from_ratings
from backend.recsys.model import FactorModel
from backend.recsys.synthetic import generate_ratings

ALS = {"factors": 6, "regularization": 0.5, "alpha": 3.0, "dtype": "float64", "use_cg": False,
       "iterations": 30}  # fmt: skip


@pytest.fixture(scope="module")
def model() -> FactorModel:
    ratings = generate_ratings(200, 80, 4000, rank=4, seed=2).ratings
    positives = from_ratings(ratings, InteractionWeights(rating_threshold=3.0))
    return fit_implicit(positives, AlgoSpec("implicit_als", ALS))


GIVEN = {"i3": 2.0, "i10": 1.0, "i17": 5.0, "i40": -1.5, "i41": 0.5}


def _direct(model: FactorModel, given: dict[str, float], lam: float) -> np.ndarray:
    """p_u = (YᵀY + Yᵀ(C_u − I)Y + λI)⁻¹ Yᵀ C_u p(u), written out cell by cell."""
    y = model.item_factors
    alpha = model.params["alpha"]
    lhs = y.T @ y + lam * np.eye(y.shape[1])
    rhs = np.zeros(y.shape[1])
    index = {str(raw): i for i, raw in enumerate(model.item_ids)}
    for raw, r in given.items():
        q = y[index[raw]]
        c = 1.0 + alpha * abs(r)
        lhs += (c - 1.0) * np.outer(q, q)
        if r > 0:
            rhs += c * q
    return np.linalg.solve(lhs, rhs)


def test_fold_in_solves_the_implicit_normal_equations(model: FactorModel) -> None:
    folded = fold_in_implicit(model, GIVEN)
    assert folded.reg == ALS["regularization"]  # the model's own λ by default
    np.testing.assert_allclose(folded.user_vector, _direct(model, GIVEN, 0.5), rtol=0, atol=1e-9)
    other = fold_in_implicit(model, GIVEN, reg=7.0)
    np.testing.assert_allclose(other.user_vector, _direct(model, GIVEN, 7.0), rtol=0, atol=1e-9)
    # fold_in chooses this solve for an implicit model.
    np.testing.assert_array_equal(fold_in(model, GIVEN, reg=None).user_vector, folded.user_vector)
    assert folded.user_bias == 0.0


def test_fold_in_equals_the_packages_recalculate_user(model: FactorModel) -> None:
    als = implicit_package("implicit.cpu.als").AlternatingLeastSquares(
        factors=ALS["factors"], regularization=0.5, alpha=1.0, dtype=np.float64
    )
    als.item_factors = model.item_factors.copy()
    index = {str(raw): i for i, raw in enumerate(model.item_ids)}
    columns = [index[raw] for raw in GIVEN]
    values = als_confidence(np.array(list(GIVEN.values())), model.params["alpha"])
    row = sp.csr_matrix((values, ([0] * len(columns), columns)), shape=(1, model.n_items))
    row.sort_indices()
    expected = als.recalculate_user(0, row)
    np.testing.assert_allclose(fold_in_implicit(model, GIVEN).user_vector, expected, atol=1e-9)


def test_a_trained_user_folds_back_to_itself(model: FactorModel) -> None:
    for u in (0, 7, 50):
        folded = fold_in_implicit(model, {}, existing_user=u)
        assert folded.rated_items.tolist() == model.seen(u).tolist()
        trained, again = model.scores(u), folded.scores(model)
        assert np.corrcoef(trained, again)[0, 1] > 0.99


def test_recommendations_skip_the_given_items(model: FactorModel) -> None:
    folded = fold_in_implicit(model, GIVEN)
    top = recommend_folded(model, folded, 20)
    given = {str(raw) for raw in GIVEN}
    assert len(top) == 20 and not given & {str(model.item_ids[i]) for i in top.items}


def test_item_knn_folds_in_as_the_users_positive_items() -> None:
    ratings = generate_ratings(60, 30, 600, seed=1).ratings
    knn = fit_implicit(from_ratings(ratings), AlgoSpec("item_knn"))
    for u in (0, 5):
        items = {str(knn.item_ids[i]): 1.0 for i in knn.seen(u)}
        folded = fold_in(knn, items, reg=None)
        np.testing.assert_allclose(folded.scores(knn), knn.scores(u), atol=1e-12)


def test_zero_or_missing_strengths_are_refused(model: FactorModel) -> None:
    with pytest.raises(InvalidRatingsError, match="finite non-zero"):
        fold_in_implicit(model, {"i3": 0.0})
    with pytest.raises(InvalidRatingsError, match="at least one interaction"):
        fold_in_implicit(model, {})
