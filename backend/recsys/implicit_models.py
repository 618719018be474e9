"""Single-machine models of implicit feedback, each trained into the serving ``FactorModel``.

Every model here reads an interactions frame (``interactions.COLUMNS``: one confidence ``r`` per
(user, item); ``r < 0`` is a negative) and returns a ``FactorModel`` with zero biases and
``global_mean`` 0, so serving, similar items, precompute and artifacts work unchanged. Users and
items are indexed in sorted id order, and the seen rows are each user's positive items.

* ``implicit_als``: the implicit package's ``AlternatingLeastSquares`` (Hu, Koren and Volinsky
  2008): minimise ``Σ_{u,i} c_ui (p_ui − x_u·y_i)² + λ(Σ‖x_u‖² + Σ‖y_i‖²)`` over every cell, with
  ``p_ui = [r_ui > 0]`` and ``c_ui = 1 + alpha·|r_ui|`` (1 for a cell with no interaction). The
  package reads a matrix value ``v`` as ``c = |v|`` and ``p = [v > 0]``, so it is given
  ``sign(r)·(1 + alpha·|r|)`` with its own ``alpha`` at 1: the same objective as Spark MLlib's
  implicit ALS, up to Spark's per-user scaling of ``λ``. Rows are solved independently, so the
  result does not depend on ``num_threads``; with ``use_cg`` each row is a few conjugate-gradient
  steps rather than the exact solve.
* ``item_knn``: item-item cosine similarity ``s_ij = |U_i ∩ U_j| / sqrt(|U_i|·|U_j|)`` on the
  binarised positives (``s_ii = 0``); a user's score of item ``i`` is ``Σ_{j ∈ I(u)} s_ij``. As a
  factor model the user vector is the user's 0/1 row and item ``i``'s factors are row ``i`` of
  the similarity matrix, so it is dense in the catalogue and refused above ``MAX_KNN_ITEMS``.
* ``popularity``: items ranked by their number of positive interactions (``item_bias``).

The implicit package is imported when a model is fitted: a script named ``implicit.py`` ahead
of site-packages on ``sys.path`` (``bench/implicit.py`` run as a script) would otherwise shadow
it, and ``implicit_package`` steps around such a file.

The package's BPR was measured and left out: on MovieLens 100K (NDCG@10 0.109) it trails both
ALS and item-kNN, and on the simulated clicks it trails popularity.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from backend.recsys.algorithms import IMPLICIT_ALGORITHMS, AlgoSpec
from backend.recsys.errors import DataError
from backend.recsys.interactions import check_interactions
from backend.recsys.model import FactorModel, FloatArray, IntArray

Progress = Callable[[float, str], None]

#: item_knn keeps n_items² float64 similarities (200 MB at this size) in memory and artifacts.
MAX_KNN_ITEMS = 5_000


def fit_implicit(
    interactions: pd.DataFrame, spec: AlgoSpec, progress: Progress | None = None
) -> FactorModel:
    """Train ``spec`` (one of ``IMPLICIT_ALGORITHMS``) on an interactions frame."""
    if spec.name not in IMPLICIT_ALGORITHMS:
        raise DataError(
            f"{spec.name} learns from ratings; implicit feedback trains "
            f"{', '.join(IMPLICIT_ALGORITHMS)}"
        )
    report = progress or _no_progress
    frame = check_interactions(interactions)
    matrix = _Matrix.of(frame)
    params = spec.resolved_params()
    report(0.05, f"training {spec.name} on {len(frame)} interactions")
    if spec.name == "implicit_als":
        users, items = _fit_als(matrix, params, report)
    elif spec.name == "item_knn":
        users, items = _fit_knn(matrix)
    else:
        users = np.zeros((matrix.n_users, 0), dtype=np.float64)
        items = np.zeros((matrix.n_items, 0), dtype=np.float64)
    # Fold-in reads "feedback" to solve the implicit normal equations instead of ridge on ratings.
    model = matrix.model(spec.name, users, items, {**params, "feedback": "implicit"})
    report(1.0, f"trained {spec.name} on {len(frame)} interactions")
    return model


def als_confidence(values: FloatArray, alpha: float) -> FloatArray:
    """``sign(r)·(1 + alpha·|r|)``: the matrix values the implicit package reads as ``p`` and
    ``c = 1 + alpha·|r|`` (module docstring)."""
    return np.asarray(np.sign(values) * (1.0 + alpha * np.abs(values)), dtype=np.float64)


class _Matrix:
    """The interactions as a CSR user × item matrix over sorted ids."""

    def __init__(self, users: np.ndarray, items: np.ndarray, csr: sp.csr_matrix) -> None:
        self.user_ids = users
        self.item_ids = items
        self.csr = csr

    @staticmethod
    def of(frame: pd.DataFrame) -> _Matrix:
        user_codes, users = pd.factorize(frame["user"], sort=True)
        item_codes, items = pd.factorize(frame["item"], sort=True)
        csr = sp.csr_matrix(
            (frame["confidence"].to_numpy(np.float64), (user_codes, item_codes)),
            shape=(len(users), len(items)),
        )
        csr.sort_indices()
        return _Matrix(np.asarray(users, dtype=np.str_), np.asarray(items, dtype=np.str_), csr)

    @property
    def n_users(self) -> int:
        return int(self.csr.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.csr.shape[1])

    def positives(self) -> sp.csr_matrix:
        """The 0/1 matrix of positive interactions."""
        out = self.csr.copy()
        out.data = (out.data > 0).astype(np.float64)
        out.eliminate_zeros()
        return out

    def model(
        self, algorithm: str, users: FloatArray, items: FloatArray, params: dict[str, Any]
    ) -> FactorModel:
        seen = self.positives()
        popularity: IntArray = np.bincount(seen.indices, minlength=self.n_items).astype(np.int64)
        item_bias = (
            popularity.astype(np.float64)
            if algorithm == "popularity"
            else np.zeros(self.n_items, dtype=np.float64)
        )
        return FactorModel(
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            global_mean=0.0,
            user_bias=np.zeros(self.n_users, dtype=np.float64),
            item_bias=item_bias,
            user_factors=np.ascontiguousarray(users, dtype=np.float64),
            item_factors=np.ascontiguousarray(items, dtype=np.float64),
            seen_indptr=seen.indptr.astype(np.int64),
            seen_indices=seen.indices.astype(np.int64),
            item_popularity=popularity,
            algorithm=algorithm,
            params=params,
        )


def _fit_als(
    matrix: _Matrix, params: dict[str, Any], report: Progress
) -> tuple[FloatArray, FloatArray]:
    als_class = implicit_package("implicit.cpu.als").AlternatingLeastSquares
    dtype = np.float64 if params["dtype"] == "float64" else np.float32
    csr = matrix.csr.copy()
    csr.data = als_confidence(csr.data, float(params["alpha"]))
    total = int(params["iterations"])

    def epoch(iteration: int, _elapsed: float, _loss: Any) -> None:
        report(0.05 + 0.9 * (iteration + 1) / total, f"iteration {iteration + 1}/{total}")

    with _one_blas_thread():
        model = als_class(
            factors=int(params["factors"]),
            regularization=float(params["regularization"]),
            alpha=1.0,  # the confidence is built here (als_confidence), as Spark builds it
            dtype=dtype,
            use_cg=bool(params["use_cg"]),
            iterations=total,
            num_threads=int(params["num_threads"]),
            random_state=params["random_state"],
        )
        model.fit(csr.astype(dtype), show_progress=False, callback=epoch)
    return _dense(model.user_factors), _dense(model.item_factors)


def _fit_knn(matrix: _Matrix) -> tuple[FloatArray, FloatArray]:
    if matrix.n_items > MAX_KNN_ITEMS:
        raise DataError(
            f"item_knn keeps a dense {matrix.n_items}x{matrix.n_items} similarity matrix; "
            f"it takes at most {MAX_KNN_ITEMS} items (use implicit_als)"
        )
    binary = matrix.positives()
    counts = np.asarray(binary.sum(axis=0), dtype=np.float64).ravel()
    norms = np.sqrt(counts)
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    co = (binary.T @ binary).toarray()
    similarity = co * inverse[:, None] * inverse[None, :]
    np.fill_diagonal(similarity, 0.0)
    return binary.toarray(), np.asarray(similarity, dtype=np.float64)


def _dense(factors: Any) -> FloatArray:
    array = factors.to_numpy() if hasattr(factors, "to_numpy") else factors
    return np.asarray(array, dtype=np.float64)


def implicit_package(module: str) -> Any:
    """``module`` of the implicit package, stepping around a script named implicit.py."""
    loaded = sys.modules.get("implicit")
    if loaded is not None and not hasattr(loaded, "__path__"):
        del sys.modules["implicit"]  # a plain module took the package's name
    spec = importlib.util.find_spec("implicit") if "implicit" not in sys.modules else None
    if spec is None or spec.submodule_search_locations is not None or spec.origin is None:
        return importlib.import_module(module)
    shadow = os.path.dirname(os.path.abspath(spec.origin))
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != shadow]
    try:
        return importlib.import_module(module)
    finally:
        sys.path[:] = saved


def _one_blas_thread() -> Any:
    # The package parallelises over rows itself; BLAS threads on top of that only contend.
    return threadpool_limits(1, "blas")


def _no_progress(fraction: float, message: str) -> None:
    return None
