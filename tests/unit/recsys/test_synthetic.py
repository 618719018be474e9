"""The synthetic generator: seeded, on the scale, skewed, and learnable."""

from __future__ import annotations

import numpy as np
import pytest

from backend.recsys.algorithms import AlgoSpec
from backend.recsys.crossval import cross_validate
from backend.recsys.errors import DataError
from backend.recsys.synthetic import generate_ratings


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = generate_ratings(100, 50, 1000, seed=1)
    b = generate_ratings(100, 50, 1000, seed=1)
    c = generate_ratings(100, 50, 1000, seed=2)
    assert a.ratings.fingerprint == b.ratings.fingerprint != c.ratings.fingerprint
    np.testing.assert_array_equal(a.user_factors, b.user_factors)


def test_shape_scale_and_rounding() -> None:
    data = generate_ratings(300, 200, 5000, rank=4, seed=0, scale=(1, 10), step=0.5)
    frame = data.ratings.frame
    assert len(frame) == 5000 and not frame.duplicated(["user", "item"]).any()
    assert frame["rating"].between(1, 10).all()
    assert np.all(((frame["rating"] - 1) / 0.5) % 1 == 0)
    assert data.user_factors.shape == (300, 4) and data.item_factors.shape == (200, 4)


def test_popularity_is_skewed() -> None:
    counts = generate_ratings(500, 400, 20_000, seed=0).ratings.frame["item"].value_counts()
    top_share = counts.iloc[:40].sum() / counts.sum()  # the top 10 % of items
    assert top_share > 0.3


def test_structure_is_learnable() -> None:
    ratings = generate_ratings(300, 150, 9000, rank=3, noise=0.3, seed=0, step=None).ratings
    svd = cross_validate(ratings, AlgoSpec("svd", {"n_factors": 3, "n_epochs": 40}), k=3)
    mean = cross_validate(ratings, AlgoSpec("global_mean"), k=3)
    assert svd.rmse.mean is not None and mean.rmse.mean is not None
    assert svd.rmse.mean < 0.8 * mean.rmse.mean


def test_impossible_requests_are_data_errors() -> None:
    with pytest.raises(DataError, match="half the 10x10 cells"):
        generate_ratings(10, 10, 60)
    with pytest.raises(DataError, match="rank"):
        generate_ratings(10, 10, 20, rank=0)
