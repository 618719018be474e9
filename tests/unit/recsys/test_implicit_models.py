"""Implicit models: the factor-model form, reproducibility, item-kNN's formula, and ranking
quality against popularity on seeded latent-factor clicks and on MovieLens 100K."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.recsys.algorithms import AlgoSpec, fit
from backend.recsys.artifacts import load_artifact, save_artifact
from backend.recsys.datasets import RatingsSource, load_ratings
from backend.recsys.errors import DataError
from backend.recsys.implicit_models import fit_implicit, implicit_package
from backend.recsys.interactions import InteractionWeights, from_events, from_ratings
from backend.recsys.ranking import evaluate_implicit_ranking
from backend.recsys.synthetic import generate_clicks


@pytest.fixture(scope="module")
def clicks() -> pd.DataFrame:
    """Clicks of 300 users on 150 items from a rank-4 model, each user shown every item
    about six times (uniform exposure, so the clicks follow taste rather than exposure)."""
    events, _ = generate_clicks(300, 150, 900, rank=4, seed=5, slope=2.0, popularity_skew=0.0)
    return from_events(events, InteractionWeights())


def _tiny() -> pd.DataFrame:
    return pd.DataFrame(
        {"user": ["b", "a", "a", "c", "b", "c"], "item": ["x", "x", "y", "z", "z", "y"],
         "confidence": [2.0, 1.0, 3.0, 1.0, -1.0, 4.0], "timestamp": [1, 2, 3, 4, 5, 6]}
    )  # fmt: skip


def test_an_implicit_model_is_a_factor_model_without_biases() -> None:
    model = fit_implicit(_tiny(), AlgoSpec("implicit_als", {"factors": 3, "iterations": 2}))
    assert model.user_ids.tolist() == ["a", "b", "c"] and model.item_ids.tolist() == ["x", "y", "z"]
    assert model.global_mean == 0.0 and not model.user_bias.any() and not model.item_bias.any()
    assert model.user_factors.shape == (3, 3) and model.item_factors.shape == (3, 3)
    assert model.algorithm == "implicit_als" and model.implicit_feedback
    assert model.params["alpha"] == 1.0 and model.params["regularization"] == 1.0
    # Seen rows hold the positives only: b's negative on z is not "seen".
    assert [model.seen(u).tolist() for u in range(3)] == [[0, 1], [0], [1, 2]]
    assert model.item_popularity.tolist() == [2, 2, 1]


def test_training_is_reproducible_and_does_not_depend_on_threads(clicks: pd.DataFrame) -> None:
    spec = {"factors": 8, "iterations": 5, "random_state": 3}
    one = fit_implicit(clicks, AlgoSpec("implicit_als", {**spec, "num_threads": 1}))
    again = fit_implicit(clicks, AlgoSpec("implicit_als", {**spec, "num_threads": 1}))
    two = fit_implicit(clicks, AlgoSpec("implicit_als", {**spec, "num_threads": 2}))
    np.testing.assert_array_equal(one.user_factors, again.user_factors)
    np.testing.assert_array_equal(one.item_factors, two.item_factors)
    other = fit_implicit(clicks, AlgoSpec("implicit_als", {**spec, "random_state": 4}))
    assert not np.allclose(one.item_factors, other.item_factors)


def test_item_knn_scores_are_summed_cosine_similarities() -> None:
    model = fit_implicit(_tiny(), AlgoSpec("item_knn"))
    # Positives: a{x, y}, b{x}, c{y, z}. Item columns x=(1,1,0), y=(1,0,1), z=(0,0,1).
    cos_xy, cos_yz = 1 / 2, 1 / np.sqrt(2)
    expected = {
        "a": [cos_xy, cos_xy, cos_yz],  # x: s(x,y); y: s(y,x); z: s(z,y)
        "b": [0.0, cos_xy, 0.0],
        "c": [cos_xy, cos_yz, cos_yz],
    }
    for u, raw in enumerate(model.user_ids):
        np.testing.assert_allclose(model.scores(u), expected[str(raw)], atol=1e-12)


def test_popularity_counts_positive_interactions() -> None:
    model = fit_implicit(_tiny(), AlgoSpec("popularity"))
    assert model.item_bias.tolist() == [2.0, 2.0, 1.0] and model.n_factors == 0


def test_implicit_als_beats_popularity_and_item_knn_on_latent_clicks(clicks: pd.DataFrame) -> None:
    specs = [
        AlgoSpec("popularity"),
        AlgoSpec("item_knn"),
        AlgoSpec("implicit_als", {"factors": 4, "regularization": 10.0}),
    ]
    report = evaluate_implicit_ranking(clicks, specs, n_test=10, k=10)
    ndcg = {r.algorithm: r.ndcg for r in report.results}
    assert ndcg["implicit_als"] > 1.3 * ndcg["popularity"], ndcg
    assert ndcg["implicit_als"] > ndcg["item_knn"], ndcg
    assert report.n_users_evaluated > 250 and report.threshold == 0.0


def test_implicit_als_beats_popularity_on_movielens(ml100k_dir: Path) -> None:
    ratings = load_ratings(RatingsSource("ml-100k", ml100k_dir))
    positives = from_ratings(ratings, InteractionWeights(rating_threshold=4.0))
    specs = [AlgoSpec("popularity"), AlgoSpec("implicit_als", {"factors": 64})]
    report = evaluate_implicit_ranking(positives, specs, n_test=10, k=10)
    ndcg = {r.algorithm: r.ndcg for r in report.results}
    assert ndcg["popularity"] == pytest.approx(0.085, abs=0.01)
    assert ndcg["implicit_als"] > ndcg["popularity"] + 0.02, ndcg


def test_an_implicit_model_round_trips_through_an_artifact(tmp_path: Path) -> None:
    model = fit_implicit(_tiny(), AlgoSpec("implicit_als", {"factors": 2, "iterations": 1}))
    loaded = load_artifact(save_artifact(model, tmp_path, "v1", metrics={}, fingerprint="f"))
    assert loaded.model.implicit_feedback and loaded.model.algorithm == "implicit_als"
    np.testing.assert_array_equal(loaded.model.item_factors, model.item_factors)


def test_implicit_algorithms_do_not_train_on_ratings_directly() -> None:
    from backend.recsys.synthetic import generate_ratings

    ratings = generate_ratings(20, 10, 50, seed=0).ratings
    with pytest.raises(DataError, match="learns from interactions"):
        fit(ratings, AlgoSpec("implicit_als"))
    with pytest.raises(DataError, match="learns from ratings"):
        fit_implicit(_tiny(), AlgoSpec("svd"))
    with pytest.raises(DataError, match="'float32' or 'float64'"):
        AlgoSpec("implicit_als", {"dtype": "half"})


def test_a_script_named_implicit_does_not_shadow_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "implicit.py").write_text("raise RuntimeError('the script ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import sys

    monkeypatch.delitem(sys.modules, "implicit", raising=False)
    for name in [m for m in sys.modules if m.startswith("implicit.")]:
        monkeypatch.delitem(sys.modules, name)
    als = implicit_package("implicit.cpu.als")
    assert hasattr(als, "AlternatingLeastSquares")
    assert str(tmp_path) == sys.path[0]  # the path is restored
