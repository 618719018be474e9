"""Fold-in: a user's own ratings give back a user that predicts like the trained one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from surprise import SVD, BaselineOnly, Dataset, Reader, Trainset

from backend.recsys.errors import (
    InvalidParameterError,
    InvalidRatingsError,
    UnknownItemError,
    UnknownUserError,
)
from backend.recsys.foldin import FoldIn, fold_in, recommend_folded
from backend.recsys.model import FactorModel
from backend.recsys.surprise_adapter import factor_model_from_surprise
from backend.recsys.topn import recommend


@pytest.fixture(scope="module")
def trained(ml100k_dir: Path) -> tuple[Trainset, FactorModel]:
    data = Dataset.load_from_file(str(ml100k_dir / "u.data"), reader=Reader("ml-100k"))
    trainset = data.build_full_trainset()
    algo = SVD(n_factors=20, n_epochs=20, random_state=3).fit(trainset)
    return trainset, factor_model_from_surprise(algo, trainset, algorithm="svd", params={})


def _own_ratings(trainset: Trainset, u: int) -> dict[str, float]:
    return {str(trainset.to_raw_iid(i)): float(r) for i, r in trainset.ur[u]}


def _rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


def test_own_ratings_reproduce_the_trained_user(trained: tuple[Trainset, FactorModel]) -> None:
    trainset, model = trained
    for u in (0, 10, 100, 500):
        ratings = _own_ratings(trainset, u)
        folded = fold_in(model, ratings, reg=5.0)
        items = folded.rated_items
        truth = folded.ratings
        trained_pred = model.scores(u)
        folded_pred = folded.scores(model)
        # Across the whole catalogue the folded user ranks items like the trained one.
        assert np.corrcoef(trained_pred, folded_pred)[0, 1] > 0.9
        # On the user's own ratings the least-squares fit is at least about as close.
        assert _rmse(folded_pred[items], truth) <= _rmse(trained_pred[items], truth) + 0.05
        assert sorted(items.tolist()) == model.seen(u).tolist()


def test_recommendations_exclude_the_rated_items(trained: tuple[Trainset, FactorModel]) -> None:
    _, model = trained
    ratings = {"50": 5.0, "172": 5.0, "181": 4.5, "1": 1.0}
    folded = fold_in(model, ratings, reg=0.1)
    top = recommend_folded(model, folded, 20)
    assert len(top) == 20
    rated = {model.item_ids.tolist().index(r) for r in ratings}
    assert not rated & set(top.items.tolist())
    assert np.array_equal(top.scores, folded.scores(model)[top.items])


def test_existing_user_ratings_override_and_extend(trained: tuple[Trainset, FactorModel]) -> None:
    _, model = trained
    u = 5
    seen = model.seen(u)
    first = str(model.item_ids[seen[0]])
    new_item = next(str(i) for i in model.item_ids if i not in set(model.item_ids[seen]))
    folded = fold_in(model, {first: 1.0, new_item: 5.0}, reg=0.5, existing_user=u)
    assert folded.existing_user == u
    assert folded.rated_items.size == seen.size + 1
    pos = {int(i): k for k, i in enumerate(folded.rated_items)}
    assert folded.ratings[pos[int(seen[0])]] == 1.0
    new_inner = model.item_ids.tolist().index(new_item)
    assert folded.ratings[pos[new_inner]] == 5.0
    # With no hypothetical ratings the user stays close to itself.
    same = fold_in(model, {}, reg=5.0, existing_user=u)
    assert np.corrcoef(model.scores(u), same.scores(model))[0, 1] > 0.95
    assert set(recommend_folded(model, same, 10).items.tolist()).isdisjoint(seen.tolist())
    assert recommend(model, u, 10).items.shape == (10,)


def test_baseline_model_folds_the_bias_only(ml100k_dir: Path) -> None:
    data = Dataset.load_from_file(str(ml100k_dir / "u.data"), reader=Reader("ml-100k"))
    trainset = data.build_full_trainset()
    algo = BaselineOnly(verbose=False).fit(trainset)
    model = factor_model_from_surprise(algo, trainset, algorithm="baseline", params={})
    folded = fold_in(model, _own_ratings(trainset, 0), reg=1.0)
    assert folded.user_vector.shape == (0,)
    assert folded.user_bias == pytest.approx(model.user_bias[0], abs=0.15)


@pytest.mark.parametrize(
    ("ratings", "error", "message"),
    [
        ({"50": 6.0}, InvalidRatingsError, r"item '50' is 6.0; ratings must lie in \[1, 5\]"),
        ({"50": float("nan")}, InvalidRatingsError, "item '50'"),
        ({"50": "good"}, InvalidRatingsError, "not a number"),
        ({"no-such-item": 3.0}, UnknownItemError, "'no-such-item'"),
        ({}, InvalidRatingsError, "at least one rating"),
    ],
)
def test_bad_ratings_name_the_item(
    trained: tuple[Trainset, FactorModel], ratings: dict, error: type, message: str
) -> None:
    _, model = trained
    with pytest.raises(error, match=message):
        fold_in(model, ratings, reg=0.1)


def test_bad_parameters(trained: tuple[Trainset, FactorModel]) -> None:
    _, model = trained
    with pytest.raises(InvalidParameterError, match="reg"):
        fold_in(model, {"50": 4.0}, reg=-1.0)
    with pytest.raises(UnknownUserError, match="out of range"):
        fold_in(model, {"50": 4.0}, reg=0.1, existing_user=model.n_users)
    with pytest.raises(InvalidRatingsError, match="reg > 0"):
        fold_in(model, {"50": 4.0}, reg=0.0)


def test_result_is_frozen(trained: tuple[Trainset, FactorModel]) -> None:
    _, model = trained
    folded = fold_in(model, {"50": 4.0}, reg=0.1)
    assert isinstance(folded, FoldIn)
    with pytest.raises(AttributeError):
        folded.user_bias = 1.0  # type: ignore[misc]
