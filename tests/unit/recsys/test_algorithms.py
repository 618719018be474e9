"""Algorithm specs validate their parameters; fit() trains exactly surprise's model."""

from __future__ import annotations

import numpy as np
import pytest
from surprise import SVD

from backend.recsys.algorithms import AlgoSpec, build_trainset, fit, make_algo
from backend.recsys.datasets import Ratings
from backend.recsys.errors import DataError
from backend.recsys.predict import predict_ratings
from backend.recsys.synthetic import generate_ratings


@pytest.fixture(scope="module")
def ratings() -> Ratings:
    return generate_ratings(150, 80, 3000, rank=3, seed=5).ratings


def test_unknown_parameter_lists_the_allowed_names() -> None:
    with pytest.raises(DataError) as info:
        AlgoSpec("svd", {"n_factor": 10})
    message = str(info.value)
    assert "unknown parameter(s) n_factor for svd" in message
    for name in ("n_factors", "lr_bu", "reg_qi", "random_state", "init_std_dev", "biased"):
        assert name in message


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("svd", {"n_factors": 0}, "n_factors=0 must be a positive integer"),
        ("svd", {"n_epochs": 2.5}, "positive integer"),
        ("svd", {"lr_all": -0.1}, "greater than 0"),
        ("svd", {"reg_pu": float("nan")}, "finite number"),
        ("svd", {"biased": "yes"}, "true or false"),
        ("svd", {"random_state": -1}, "non-negative integer seed"),
        ("svdpp", {"biased": True}, "unknown parameter"),
        ("baseline", {"method": "newton"}, "'als' or 'sgd'"),
        ("baseline", {"method": "als", "learning_rate": 0.1}, "do not apply to method 'als'"),
        ("knn", {}, "unknown algorithm 'knn'"),
    ],
)
def test_bad_specs_are_data_errors(name: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        AlgoSpec(name, params)


def test_resolved_params_fill_defaults_and_keep_overrides() -> None:
    params = AlgoSpec("svd", {"lr_bu": 0.01}).resolved_params()
    assert params["n_factors"] == 100 and params["lr_all"] == 0.005 and params["lr_bu"] == 0.01
    assert params["random_state"] == 0
    assert AlgoSpec("baseline", {"method": "sgd"}).resolved_params() == {"method": "sgd"}


def test_every_hyperparameter_reaches_surprise() -> None:
    spec = AlgoSpec(
        "svd",
        {"n_factors": 7, "n_epochs": 3, "biased": False, "init_mean": 0.1, "init_std_dev": 0.2,
         "lr_all": 0.01, "reg_all": 0.03, "lr_bu": 0.1, "lr_bi": 0.2, "lr_pu": 0.3, "lr_qi": 0.4,
         "reg_bu": 0.5, "reg_bi": 0.6, "reg_pu": 0.7, "reg_qi": 0.8, "random_state": 9},
    )  # fmt: skip
    algo = make_algo(spec)
    assert isinstance(algo, SVD)
    names = (
        "n_factors", "n_epochs", "biased", "init_mean", "init_std_dev", "lr_bu", "lr_bi",
        "lr_pu", "lr_qi", "reg_bu", "reg_bi", "reg_pu", "reg_qi", "random_state",
    )  # fmt: skip
    got = {k: getattr(algo, k) for k in names}
    assert got == {
        "n_factors": 7, "n_epochs": 3, "biased": False, "init_mean": 0.1, "init_std_dev": 0.2,
        "lr_bu": 0.1, "lr_bi": 0.2, "lr_pu": 0.3, "lr_qi": 0.4, "reg_bu": 0.5, "reg_bi": 0.6,
        "reg_pu": 0.7, "reg_qi": 0.8, "random_state": 9,
    }  # fmt: skip


@pytest.mark.parametrize(
    "spec",
    [
        AlgoSpec("svd", {"n_factors": 8, "n_epochs": 5}),
        AlgoSpec("svdpp", {"n_factors": 4, "n_epochs": 2}),
        AlgoSpec("baseline", {"method": "sgd", "n_epochs": 5}),
        AlgoSpec("global_mean"),
    ],
    ids=lambda s: s.name,
)
def test_fit_predicts_what_surprise_predicts(ratings: Ratings, spec: AlgoSpec) -> None:
    model = fit(ratings, spec)
    frame = ratings.frame
    trainset = build_trainset(
        frame["user"].to_numpy(), frame["item"].to_numpy(), frame["rating"].to_numpy(),
        ratings.scale,
    )  # fmt: skip
    algo = make_algo(spec).fit(trainset)
    sample = frame.sample(200, random_state=1)
    expected = [algo.predict(u, i).est for u, i in zip(sample["user"], sample["item"], strict=True)]
    got = predict_ratings(model, sample["user"], sample["item"])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert model.algorithm == spec.name and model.params == spec.resolved_params()


def test_epoch_progress_does_not_change_the_model(ratings: Ratings) -> None:
    spec = AlgoSpec("svd", {"n_factors": 5, "n_epochs": 4})
    calls: list[tuple[float, str]] = []
    traced = fit(ratings, spec, progress=lambda f, m: calls.append((f, m)))
    plain = fit(ratings, spec)
    np.testing.assert_array_equal(traced.user_factors, plain.user_factors)
    np.testing.assert_array_equal(traced.item_bias, plain.item_bias)
    epochs = [m for _, m in calls if m.startswith("epoch")]
    assert epochs == ["epoch 1/4", "epoch 2/4", "epoch 3/4", "epoch 4/4"]
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0


def test_popularity_ranks_by_training_counts(ratings: Ratings) -> None:
    model = fit(ratings, AlgoSpec("popularity"))
    counts = ratings.frame["item"].value_counts()
    expected = counts.reindex(model.item_ids).to_numpy(np.float64)
    np.testing.assert_array_equal(model.scores(0), expected)
    with pytest.raises(DataError, match="predicts no ratings"):
        predict_ratings(model, ["u0"], ["i0"])
    with pytest.raises(DataError, match="ranking evaluation"):
        make_algo(AlgoSpec("popularity"))


def test_unknown_users_and_items_follow_surprise(ratings: Ratings) -> None:
    model = fit(ratings, AlgoSpec("svd", {"n_factors": 4, "n_epochs": 3}))
    est = predict_ratings(model, ["nobody", "u0"], ["i0", "nothing"])
    u0 = int(np.flatnonzero(model.user_ids == "u0")[0])
    i0 = int(np.flatnonzero(model.item_ids == "i0")[0])
    assert est[0] == pytest.approx(model.global_mean + model.item_bias[i0])
    assert est[1] == pytest.approx(model.global_mean + model.user_bias[u0])
