"""Turn a fitted scikit-surprise algorithm into the serving :class:`FactorModel`.

Every supported algorithm becomes ``r̂(u, i) = μ + b_u + b_i + q_i · p_u`` so that serving is one
dot product whatever was trained:

* ``SVD`` / ``NMF`` (biased): the learnt ``μ, b_u, b_i, p_u, q_i`` as they are.
* ``SVD`` / ``NMF`` (``biased=False``): ``μ = 0`` and zero biases; surprise predicts ``q_i · p_u``.
* ``SVDpp``: ``p_u`` is replaced by ``p_u + |N(u)|^-½ Σ_{j ∈ N(u)} y_j`` where ``N(u)`` are the
  items the user rated in the training set, exactly the term surprise adds at prediction time.
* ``BaselineOnly``: ``μ + b_u + b_i`` with zero-width factor matrices (``k = 0``).
* ``NormalPredictor``: surprise draws each estimate from ``N(μ, σ)``; a draw cannot be served
  reproducibly, so the model serves the expected value ``μ`` (zero biases, ``k = 0``) and ranks
  by nothing else. Top-N over such a model is decided by the documented tie rule alone.

Inner ids are surprise's inner ids; raw ids are converted to ``str``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from surprise import NMF, SVD, BaselineOnly, NormalPredictor, SVDpp, Trainset
from surprise.prediction_algorithms.algo_base import AlgoBase

from backend.recsys.errors import DataError
from backend.recsys.model import FactorModel, FloatArray, IntArray

__all__ = ["UnsupportedAlgorithmError", "factor_model_from_surprise"]


class UnsupportedAlgorithmError(DataError):
    """The fitted algorithm has no factor-model form (e.g. a k-NN model)."""


def _seen_csr(trainset: Trainset) -> tuple[IntArray, IntArray]:
    """CSR rows of inner item ids each user rated, each row sorted by item inner id."""
    n_users = int(trainset.n_users)
    counts = np.fromiter(
        (len(trainset.ur[u]) for u in range(n_users)), dtype=np.int64, count=n_users
    )
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    items = np.fromiter(
        (j for u in range(n_users) for j, _ in trainset.ur[u]),
        dtype=np.int64,
        count=int(indptr[-1]),
    )
    # Sort within each row: lexsort by (item, row) keeps rows contiguous.
    rows = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    order = np.lexsort((items, rows))
    return indptr, np.ascontiguousarray(items[order])


def _raw_ids(n: int, to_raw: Any) -> np.ndarray:
    return np.array([str(to_raw(k)) for k in range(n)], dtype=np.str_)


def _check_fitted(algo: AlgoBase, trainset: Trainset, attrs: tuple[str, ...]) -> None:
    missing = [a for a in attrs if not hasattr(algo, a)]
    if missing or getattr(algo, "trainset", None) is None:
        raise UnsupportedAlgorithmError(
            f"{type(algo).__name__} is not fitted (missing {', '.join(missing) or 'trainset'}); "
            "call algo.fit(trainset) before converting it"
        )
    if algo.trainset is not trainset:
        raise DataError(
            f"{type(algo).__name__} was fitted on a different trainset than the one passed; "
            "pass the trainset the algorithm was fitted on"
        )


def factor_model_from_surprise(
    algo: AlgoBase, trainset: Trainset, *, algorithm: str, params: dict[str, Any]
) -> FactorModel:
    """Build the serving :class:`FactorModel` whose ``scores(u)[i]`` equals surprise's unclipped
    estimate ``algo.predict(uid, iid, clip=False).est`` for every known user and item.

    ``algorithm`` and ``params`` are recorded on the model as given. Raises
    :class:`UnsupportedAlgorithmError` for algorithms without a factor form (k-NN, SlopeOne,
    CoClustering) or an unfitted algorithm.
    """
    n_users, n_items = int(trainset.n_users), int(trainset.n_items)
    global_mean = float(trainset.global_mean)
    user_bias: FloatArray = np.zeros(n_users, dtype=np.float64)
    item_bias: FloatArray = np.zeros(n_items, dtype=np.float64)
    indptr, indices = _seen_csr(trainset)

    # SVDpp is not a subclass of SVD in surprise, but test it first to stay explicit.
    if isinstance(algo, SVDpp):
        _check_fitted(algo, trainset, ("pu", "qi", "yj", "bu", "bi"))
        counts = np.diff(indptr)
        implicit = sp.csr_matrix(
            (np.ones(indices.shape[0], dtype=np.float64), indices, indptr),
            shape=(n_users, n_items),
        ) @ np.asarray(algo.yj, dtype=np.float64)
        # Every trainset user has at least one rating; guard anyway so k=0 users never divide by 0.
        scale = 1.0 / np.sqrt(np.maximum(counts, 1)).astype(np.float64)
        user_factors = np.asarray(algo.pu, dtype=np.float64) + implicit * scale[:, None]
        item_factors = np.asarray(algo.qi, dtype=np.float64)
        user_bias = np.asarray(algo.bu, dtype=np.float64).copy()
        item_bias = np.asarray(algo.bi, dtype=np.float64).copy()
    elif isinstance(algo, SVD | NMF):
        _check_fitted(algo, trainset, ("pu", "qi", "bu", "bi"))
        user_factors = np.asarray(algo.pu, dtype=np.float64)
        item_factors = np.asarray(algo.qi, dtype=np.float64)
        if algo.biased:
            user_bias = np.asarray(algo.bu, dtype=np.float64).copy()
            item_bias = np.asarray(algo.bi, dtype=np.float64).copy()
        else:
            global_mean = 0.0
    elif isinstance(algo, BaselineOnly):
        _check_fitted(algo, trainset, ("bu", "bi"))
        user_bias = np.asarray(algo.bu, dtype=np.float64).copy()
        item_bias = np.asarray(algo.bi, dtype=np.float64).copy()
        user_factors = np.zeros((n_users, 0), dtype=np.float64)
        item_factors = np.zeros((n_items, 0), dtype=np.float64)
    elif isinstance(algo, NormalPredictor):
        _check_fitted(algo, trainset, ("sigma",))
        user_factors = np.zeros((n_users, 0), dtype=np.float64)
        item_factors = np.zeros((n_items, 0), dtype=np.float64)
    else:
        raise UnsupportedAlgorithmError(
            f"{type(algo).__name__} has no factor-model form; supported: SVD, SVDpp, NMF, "
            "BaselineOnly, NormalPredictor"
        )

    popularity: IntArray = np.bincount(indices, minlength=n_items).astype(np.int64)
    low, high = trainset.rating_scale
    return FactorModel(
        user_ids=_raw_ids(n_users, trainset.to_raw_uid),
        item_ids=_raw_ids(n_items, trainset.to_raw_iid),
        global_mean=global_mean,
        user_bias=user_bias,
        item_bias=item_bias,
        user_factors=np.ascontiguousarray(user_factors),
        item_factors=np.ascontiguousarray(item_factors),
        seen_indptr=indptr,
        seen_indices=indices,
        item_popularity=popularity,
        rating_scale=(float(low), float(high)),
        algorithm=algorithm,
        params=dict(params),
    )
