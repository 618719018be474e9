"""factor_model_from_surprise: serving scores equal surprise's own unclipped estimates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from surprise import (
    NMF,
    SVD,
    BaselineOnly,
    Dataset,
    KNNBasic,
    NormalPredictor,
    Reader,
    SVDpp,
    Trainset,
)
from surprise.prediction_algorithms.algo_base import AlgoBase

from backend.recsys.errors import DataError
from backend.recsys.model import FactorModel
from backend.recsys.surprise_adapter import UnsupportedAlgorithmError, factor_model_from_surprise


@pytest.fixture(scope="module")
def trainset(ml100k_dir: Path) -> Trainset:
    data = Dataset.load_from_file(str(ml100k_dir / "u.data"), reader=Reader("ml-100k"))
    return data.build_full_trainset()


def _tiny_trainset() -> Trainset:
    frame = pd.DataFrame(
        {"user": ["a", "a", "b", "c", "c"], "item": [3, 1, 2, 1, 3], "rating": [5, 3, 4, 1, 2]}
    )
    return Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()


ALGORITHMS = {
    "svd": lambda: SVD(n_factors=20, n_epochs=5, random_state=1),
    "svd_unbiased": lambda: SVD(n_factors=20, n_epochs=5, biased=False, random_state=1),
    "svdpp": lambda: SVDpp(n_factors=10, n_epochs=2, random_state=1, cache_ratings=True),
    "nmf": lambda: NMF(n_factors=10, n_epochs=5, random_state=1),
    "nmf_biased": lambda: NMF(n_factors=10, n_epochs=5, biased=True, random_state=1),
    "baseline": lambda: BaselineOnly(verbose=False),
}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_scores_equal_surprise_unclipped_estimates(trainset: Trainset, name: str) -> None:
    algo: AlgoBase = ALGORITHMS[name]()
    algo.fit(trainset)
    model = factor_model_from_surprise(algo, trainset, algorithm=name, params={"seed": 1})
    rng = np.random.default_rng(7)
    users = rng.choice(model.n_users, size=25, replace=False)
    items = rng.choice(model.n_items, size=40, replace=False)
    for u in users:
        ours = model.scores(int(u))
        for i in items:
            est = algo.predict(model.user_ids[u], model.item_ids[i], clip=False).est
            assert ours[i] == pytest.approx(est, abs=1e-9)
    assert model.algorithm == name and model.params == {"seed": 1}


def test_layout_of_ids_seen_and_popularity(trainset: Trainset) -> None:
    algo = BaselineOnly(verbose=False).fit(trainset)
    model = factor_model_from_surprise(algo, trainset, algorithm="baseline", params={})
    assert model.n_users == trainset.n_users and model.n_items == trainset.n_items
    assert model.n_factors == 0
    assert model.rating_scale == (1.0, 5.0)
    assert model.user_ids.dtype.kind == "U" and model.item_ids.dtype.kind == "U"
    for u in (0, 17, model.n_users - 1):
        assert model.user_ids[u] == str(trainset.to_raw_uid(u))
        expected = sorted(j for j, _ in trainset.ur[u])
        assert model.seen(u).tolist() == expected
    assert model.seen_indptr[-1] == trainset.n_ratings
    expected_pop = [len(trainset.ir[i]) for i in range(trainset.n_items)]
    assert model.item_popularity.tolist() == expected_pop


def test_unbiased_svd_has_no_mean_or_biases(trainset: Trainset) -> None:
    algo = SVD(n_factors=5, n_epochs=1, biased=False, random_state=0).fit(trainset)
    model = factor_model_from_surprise(algo, trainset, algorithm="svd", params={})
    assert model.global_mean == 0.0
    assert not model.user_bias.any() and not model.item_bias.any()


def test_normal_predictor_serves_the_expected_value() -> None:
    ts = _tiny_trainset()
    algo = NormalPredictor().fit(ts)
    model = factor_model_from_surprise(algo, ts, algorithm="normal", params={})
    assert model.global_mean == pytest.approx(ts.global_mean)
    assert np.allclose(model.scores(0), ts.global_mean)


def test_raw_ids_become_strings() -> None:
    ts = _tiny_trainset()
    model = factor_model_from_surprise(
        SVD(n_factors=2, n_epochs=1, random_state=0).fit(ts), ts, algorithm="svd", params={}
    )
    assert sorted(model.item_ids.tolist()) == ["1", "2", "3"]
    a = model.user_ids.tolist().index("a")
    assert [model.item_ids[i] for i in model.seen(a)] == [
        str(ts.to_raw_iid(i)) for i in sorted(ts.to_inner_iid(x) for x in (1, 3))
    ]


def test_knn_is_rejected_with_the_supported_list() -> None:
    ts = _tiny_trainset()
    algo = KNNBasic(verbose=False).fit(ts)
    with pytest.raises(UnsupportedAlgorithmError, match="SVD, SVDpp"):
        factor_model_from_surprise(algo, ts, algorithm="knn", params={})
    assert issubclass(UnsupportedAlgorithmError, DataError)


def test_unfitted_or_mismatched_trainset_is_rejected() -> None:
    ts = _tiny_trainset()
    with pytest.raises(UnsupportedAlgorithmError, match="not fitted"):
        factor_model_from_surprise(SVD(), ts, algorithm="svd", params={})
    fitted = SVD(n_factors=2, n_epochs=1, random_state=0).fit(_tiny_trainset())
    with pytest.raises(DataError, match="different trainset"):
        factor_model_from_surprise(fitted, ts, algorithm="svd", params={})


def test_result_is_a_factor_model() -> None:
    ts = _tiny_trainset()
    model = factor_model_from_surprise(
        SVD(n_factors=2, n_epochs=1, random_state=0).fit(ts), ts, algorithm="svd", params={}
    )
    assert isinstance(model, FactorModel)
    assert model.user_factors.shape == (3, 2) and model.item_factors.shape == (3, 2)
