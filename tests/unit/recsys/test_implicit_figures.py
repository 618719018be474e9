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
