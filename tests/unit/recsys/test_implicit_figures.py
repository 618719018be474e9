"""The benchmark's figures: MovieLens 100K orientation values and the demo's clicks."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.recsys import implicit_figures as figures


def test_movielens_figures(ml100k_dir: Path) -> None:
    popularity = figures.ndcg10_popularity(ml100k_dir)
    als = figures.ndcg10_implicit_package(ml100k_dir, factors=64)
    assert popularity == pytest.approx(0.085, abs=0.01)
    assert als == pytest.approx(0.118, abs=0.01) and als > popularity + 0.02


def test_tuned_als_beats_popularity_on_the_demo_clicks() -> None:
    popularity = figures.ndcg10_popularity_synthetic()
    als, best = figures.ndcg10_implicit_synthetic()
    assert als > 1.25 * popularity, (als, popularity)
    assert best["factors"] == 8  # the grid finds the generating rank


def test_random_interactions_are_seeded_and_skewed_towards_popular_items() -> None:
    import numpy as np

    users, items = figures.random_interactions(50, 200, 20_000, seed=4)
    again_users, again_items = figures.random_interactions(50, 200, 20_000, seed=4)
    assert np.array_equal(users, again_users) and np.array_equal(items, again_items)
    assert users.min() >= 0 and users.max() < 50 and items.min() >= 0 and items.max() < 200
    counts = np.sort(np.bincount(items, minlength=200))[::-1]
    # Zipf-like (exponent 0.8): the most popular item gets far more than a uniform 100 draws.
    assert counts[0] > 10 * 100 / 2 and counts[-1] < 100
    other_users, _ = figures.random_interactions(50, 200, 20_000, seed=5)
    assert not np.array_equal(users, other_users)
