"""Algorithms the core trains, all through scikit-surprise, and full-data training.

``AlgoSpec(name, params)`` names an algorithm and its hyperparameters and validates them on
creation. Algorithms:

* ``svd``: surprise ``SVD`` (biased matrix factorization by SGD), every hyperparameter exposed.
* ``svdpp``: surprise ``SVDpp`` (SVD plus implicit feedback from which items a user rated).
* ``baseline``: surprise ``BaselineOnly``, ``μ + b_u + b_i`` by ALS (default) or SGD.
* ``global_mean``: predicts the training mean ``μ`` for everyone (the floor any model must beat).
* ``popularity``: ranks items by their number of training ratings; it predicts no ratings, so it
  is used in ranking evaluation only.

Implicit-feedback algorithms (``IMPLICIT_ALGORITHMS``) learn from interactions, not ratings, and
are trained by ``backend.recsys.implicit_models.fit_implicit`` (``popularity`` too, counting
positive interactions):

* ``implicit_als``: the implicit package's ALS on confidences ``1 + alpha·|r|``.
* ``item_knn``: item-item cosine similarity on the binarised interactions.

Unset SVD/SVD++ ``random_state`` defaults to 0 so that training is reproducible by default.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from surprise import SVD, BaselineOnly, Dataset, NormalPredictor, Reader, SVDpp, Trainset
from surprise.prediction_algorithms.algo_base import AlgoBase

from backend.recsys.datasets import Ratings
from backend.recsys.errors import DataError
from backend.recsys.model import FactorModel
from backend.recsys.surprise_adapter import factor_model_from_surprise

Progress = Callable[[float, str], None]

ALGORITHMS: tuple[str, ...] = (
    "svd", "svdpp", "baseline", "global_mean", "popularity", "implicit_als", "item_knn", "als",
)  # fmt: skip
RATING_PREDICTORS: tuple[str, ...] = ("svd", "svdpp", "baseline", "global_mean")
#: Algorithms that learn from interactions (``implicit_models.fit_implicit``).
IMPLICIT_ALGORITHMS: tuple[str, ...] = ("implicit_als", "item_knn", "popularity")

# Parameter kinds: "int+" positive int, "float" any finite number, "float+" > 0, "float0" >= 0,
# "bool", "seed" int >= 0 or None, "lr"/"reg" optional override (None = use *_all).
_SVD_PARAMS: dict[str, tuple[str, Any]] = {
    "n_factors": ("int+", 100),
    "n_epochs": ("int+", 20),
    "biased": ("bool", True),
    "init_mean": ("float", 0.0),
    "init_std_dev": ("float0", 0.1),
    "lr_all": ("float+", 0.005),
    "reg_all": ("float0", 0.02),
    "lr_bu": ("lr", None),
    "lr_bi": ("lr", None),
    "lr_pu": ("lr", None),
    "lr_qi": ("lr", None),
    "reg_bu": ("reg", None),
    "reg_bi": ("reg", None),
    "reg_pu": ("reg", None),
    "reg_qi": ("reg", None),
    "random_state": ("seed", 0),
}
_SVDPP_PARAMS: dict[str, tuple[str, Any]] = {
    **{k: v for k, v in _SVD_PARAMS.items() if k != "biased"},
    "n_factors": ("int+", 20),
    "lr_all": ("float+", 0.007),
    "lr_yj": ("lr", None),
    "reg_yj": ("reg", None),
    "cache_ratings": ("bool", False),
}
_BASELINE_PARAMS: dict[str, tuple[str, Any]] = {
    "method": ("method", "als"),
    "n_epochs": ("int+", None),  # surprise: 10 for ALS, 20 for SGD
    "reg_u": ("float0", None),  # ALS only, surprise default 15
    "reg_i": ("float0", None),  # ALS only, surprise default 10
    "reg": ("float0", None),  # SGD only, surprise default 0.02
    "learning_rate": ("float+", None),  # SGD only, surprise default 0.005
}
# ALS solves each row on its own, so its result does not depend on num_threads; one thread is
# the default so that a job does not take every core of a shared worker.
_IMPLICIT_ALS_PARAMS: dict[str, tuple[str, Any]] = {
    "factors": ("int+", 64),
    "regularization": ("float0", 1.0),
    "alpha": ("float0", 1.0),
    "iterations": ("int+", 15),
    "use_cg": ("bool", True),
    "dtype": ("dtype", "float32"),
    "num_threads": ("int+", 1),
    "random_state": ("seed", 0),
}
# Spark MLlib ALS (backend.pipeline.als, trained by the training layer): explicit on ratings, or
# implicit (c = 1 + alpha·|r|) on interactions; Spark scales reg_param by each row's count.
_ALS_PARAMS: dict[str, tuple[str, Any]] = {
    "rank": ("int+", 10),
    "max_iter": ("int+", 10),
    "reg_param": ("float0", 0.1),
    "alpha": ("float0", 1.0),
    "nonnegative": ("bool", False),
    "implicit": ("bool", False),
    "seed": ("seed", 0),
}
PARAMETERS: Mapping[str, Mapping[str, tuple[str, Any]]] = {
    "svd": _SVD_PARAMS,
    "svdpp": _SVDPP_PARAMS,
    "baseline": _BASELINE_PARAMS,
    "global_mean": {},
    "popularity": {},
    "implicit_als": _IMPLICIT_ALS_PARAMS,
    "item_knn": {},
    "als": _ALS_PARAMS,
}


@dataclass(frozen=True)
class AlgoSpec:
    """An algorithm name and its hyperparameters, validated on creation.

    ``params`` holds only what the caller set; ``resolved_params()`` adds the defaults.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in PARAMETERS:
            raise DataError(
                f"unknown algorithm {self.name!r}; choose one of {', '.join(ALGORITHMS)}"
            )
        allowed = PARAMETERS[self.name]
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            names = ", ".join(sorted(allowed)) or "none"
            raise DataError(
                f"unknown parameter(s) {', '.join(unknown)} for {self.name}; allowed: {names}"
            )
        for key, value in self.params.items():
            _check_value(self.name, key, allowed[key][0], value)
        if self.name == "baseline":
            method = self.params.get("method", "als")
            wrong = {"als": ("reg", "learning_rate"), "sgd": ("reg_u", "reg_i")}[method]
            used = [p for p in wrong if p in self.params]
            if used:
                raise DataError(
                    f"baseline parameter(s) {', '.join(used)} do not apply to method {method!r}"
                )
        object.__setattr__(self, "params", dict(self.params))

    def resolved_params(self) -> dict[str, Any]:
        """Every parameter with its effective value (defaults filled in, unset overrides None)."""
        defaults = {k: d for k, (_, d) in PARAMETERS[self.name].items()}
        resolved = {**defaults, **self.params}
        if self.name == "baseline":
            # Keep only the options of the chosen method, so the record says what was used.
            als = resolved["method"] == "als"
            drop = ("reg", "learning_rate") if als else ("reg_u", "reg_i")
            resolved = {k: v for k, v in resolved.items() if k not in drop and v is not None}
        return resolved


class GlobalMean(NormalPredictor):  # type: ignore[misc]
    """Predicts the training mean μ for every pair.

    A ``NormalPredictor`` whose estimate is its distribution's expected value instead of a random
    draw, so surprise's cross-validation tools and the factor-model adapter both treat it as the
    constant-μ model it is.
    """

    def estimate(self, u: Any, i: Any) -> float:
        return float(self.trainset.global_mean)


def make_algo(spec: AlgoSpec, *, verbose: bool = False) -> AlgoBase:
    """A fresh, unfitted surprise algorithm for ``spec``."""
    params = spec.resolved_params()
    if spec.name == "svd":
        return SVD(verbose=verbose, **params)
    if spec.name == "svdpp":
        return SVDpp(verbose=verbose, **params)
    if spec.name == "baseline":
        return BaselineOnly(bsl_options=params, verbose=verbose)
    if spec.name == "global_mean":
        return GlobalMean()
    raise DataError(
        f"{spec.name} predicts no ratings; use it in ranking evaluation, "
        "not rating cross-validation"
    )


def surprise_dataset(ratings: Ratings) -> Dataset:
    """The ratings as a surprise ``Dataset``, in frame order, with the declared scale."""
    reader = Reader(rating_scale=ratings.scale)
    return Dataset.load_from_df(ratings.frame[["user", "item", "rating"]], reader)


def build_trainset(
    users: np.ndarray, items: np.ndarray, values: np.ndarray, scale: tuple[float, float]
) -> Trainset:
    """A surprise ``Trainset`` from parallel arrays, built exactly as surprise builds a fold's.

    Inner ids follow first appearance, so the same rows in the same order give the same trainset
    (and the same SGD order) as ``surprise.model_selection`` produces.
    """
    raw = list(
        zip(users.tolist(), items.tolist(), values.tolist(), [None] * len(values), strict=True)
    )
    return Dataset(Reader(rating_scale=scale)).construct_trainset(raw)


def fit(ratings: Ratings, spec: AlgoSpec, progress: Progress | None = None) -> FactorModel:
    """Train ``spec`` on all of ``ratings`` and return the serving ``FactorModel``.

    SVD and SVD++ report progress after every SGD epoch (read from surprise's own epoch trace,
    so training is exactly surprise's); the other algorithms report at start and end.
    """
    report = progress or _no_progress
    report(0.0, f"building the training set ({ratings.n_ratings} ratings)")
    frame = ratings.frame
    trainset = build_trainset(
        frame["user"].to_numpy(), frame["item"].to_numpy(), frame["rating"].to_numpy(),
        ratings.scale,
    )  # fmt: skip
    return fit_trainset(trainset, spec, progress=report)


def fit_trainset(
    trainset: Trainset, spec: AlgoSpec, progress: Progress | None = None
) -> FactorModel:
    """Train ``spec`` on a surprise ``Trainset`` (see ``fit``)."""
    report = progress or _no_progress
    params = spec.resolved_params()
    if spec.name in IMPLICIT_ALGORITHMS and spec.name != "popularity":
        raise DataError(
            f"{spec.name} learns from interactions, not ratings; train it with "
            "implicit_models.fit_implicit on interactions.from_ratings(...)"
        )
    if spec.name == "popularity":
        base = factor_model_from_surprise(
            GlobalMean().fit(trainset), trainset, algorithm="popularity", params=params
        )
        # Scores are the training rating counts, so ranking by score is ranking by popularity.
        model = replace(base, global_mean=0.0, item_bias=base.item_popularity.astype(np.float64))
        report(1.0, "counted item popularity")
        return model
    algo = make_algo(spec, verbose=spec.name in ("svd", "svdpp"))
    n_epochs = int(params.get("n_epochs") or 0)
    report(0.05, f"training {spec.name}")
    if spec.name in ("svd", "svdpp"):
        with contextlib.redirect_stdout(_EpochTrace(report, n_epochs)):
            algo.fit(trainset)
    else:
        algo.fit(trainset)
    model = factor_model_from_surprise(algo, trainset, algorithm=spec.name, params=params)
    report(1.0, f"trained {spec.name} on {trainset.n_ratings} ratings")
    return model


class _EpochTrace:
    """A stdout stand-in that turns surprise's "Processing epoch N" lines into progress.

    surprise announces an epoch just before running it, so epoch N reports N finished epochs.
    Anything else written (including by the progress callback) goes to the real stdout.
    """

    _pattern = re.compile(r"processing epoch (\d+)", re.IGNORECASE)

    def __init__(self, report: Progress, n_epochs: int) -> None:
        self._report = report
        self._n_epochs = max(n_epochs, 1)
        self._stdout = sys.stdout

    def write(self, text: str) -> int:
        if text == "\n":  # print() writes the line end separately; the trace's own is dropped
            return 1
        match = self._pattern.search(text)
        if match is None:
            return self._stdout.write(text)
        done = int(match.group(1))
        with contextlib.redirect_stdout(self._stdout):
            self._report(0.05 + 0.9 * done / self._n_epochs, f"epoch {done + 1}/{self._n_epochs}")
        return len(text)

    def flush(self) -> None:
        self._stdout.flush()


def _no_progress(fraction: float, message: str) -> None:
    return None


def _check_value(algo: str, key: str, kind: str, value: Any) -> None:
    def fail(expected: str) -> DataError:
        return DataError(f"{algo} parameter {key}={value!r} must be {expected}")

    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "int+":
        if value is None and PARAMETERS[algo][key][1] is None:
            return
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise fail("a positive integer")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise fail("true or false")
    elif kind == "seed":
        if value is not None and (
            not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0
        ):
            raise fail("a non-negative integer seed")
    elif kind == "method":
        if value not in ("als", "sgd"):
            raise fail("'als' or 'sgd'")
    elif kind == "dtype":
        if value not in ("float32", "float64"):
            raise fail("'float32' or 'float64'")
    else:
        if value is None and kind in ("lr", "reg"):
            return
        if value is None and PARAMETERS[algo][key][1] is None:
            return
        if not is_number or not np.isfinite(value):
            raise fail("a finite number")
        if kind in ("float+", "lr") and value <= 0:
            raise fail("greater than 0")
        if kind in ("float0", "reg") and value < 0:
            raise fail("0 or greater")
