"""Accuracy and ranking metrics as small pure functions.

Rating metrics take the true ratings ``r`` and estimates ``r̂`` (same length) and return
``None`` rather than NaN when there is nothing to average. Ranking metrics take a boolean matrix
``hits`` of shape (users, k), ``hits[u, j]`` meaning the item at rank ``j`` of user ``u``'s list
is relevant, and ``n_relevant[u]``, the number of relevant held-out items of ``u``; they return
one value per user, and the caller averages over users.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from backend.recsys.errors import DataError
from backend.recsys.model import FloatArray

ArrayLike = npt.ArrayLike
BoolMatrix = npt.NDArray[np.bool_]


def _pair(true: ArrayLike, est: ArrayLike) -> tuple[FloatArray, FloatArray]:
    r = np.asarray(true, dtype=np.float64)
    e = np.asarray(est, dtype=np.float64)
    if r.shape != e.shape:
        raise DataError(f"{r.shape[0]} true ratings but {e.shape[0]} estimates")
    return r, e


def rmse(true: ArrayLike, est: ArrayLike) -> float | None:
    """Root mean squared error ``sqrt(mean((r - r̂)²))``; ``None`` for no ratings."""
    r, e = _pair(true, est)
    return float(np.sqrt(np.mean((r - e) ** 2))) if r.size else None


def mae(true: ArrayLike, est: ArrayLike) -> float | None:
    """Mean absolute error ``mean(|r - r̂|)``; ``None`` for no ratings."""
    r, e = _pair(true, est)
    return float(np.mean(np.abs(r - e))) if r.size else None


def mpe(true: ArrayLike, est: ArrayLike) -> float | None:
    """Mean percentage error ``mean((r - r̂) / r) × 100`` over ratings ``r ≠ 0``.

    Positive means the model under-predicts. Ratings equal to 0 have no percentage and are left
    out (count them with ``zero_ratings``); ``None`` when no non-zero rating remains.
    """
    r, e = _pair(true, est)
    nonzero = r != 0
    if not nonzero.any():
        return None
    return float(np.mean((r[nonzero] - e[nonzero]) / r[nonzero]) * 100.0)


def zero_ratings(true: ArrayLike) -> int:
    """How many ratings equal 0 (the ones ``mpe`` leaves out)."""
    return int(np.count_nonzero(np.asarray(true, dtype=np.float64) == 0))


def precision_at_k(hits: BoolMatrix, k: int) -> FloatArray:
    """Precision@k per user: relevant items among the top k, divided by k.

    Lists shorter than k (a tiny catalog) still divide by k, as the user asked for k items.
    """
    return np.asarray(hits[:, :k].sum(axis=1) / k, dtype=np.float64)


def recall_at_k(hits: BoolMatrix, n_relevant: ArrayLike, k: int) -> FloatArray:
    """Recall@k per user: relevant items in the top k over all relevant items; 0 when none."""
    n = np.asarray(n_relevant, dtype=np.float64)
    found = hits[:, :k].sum(axis=1)
    return np.divide(found, n, out=np.zeros_like(n), where=n > 0)


def hit_rate_at_k(hits: BoolMatrix, k: int) -> FloatArray:
    """Hit rate@k per user: 1 if any of the top k is relevant, else 0."""
    return np.asarray(hits[:, :k].any(axis=1), dtype=np.float64)


def ndcg_at_k(hits: BoolMatrix, n_relevant: ArrayLike, k: int) -> FloatArray:
    """NDCG@k per user with binary gains: ``DCG / IDCG``.

    ``DCG = Σ_{j<k} hit_j / log2(j + 2)`` and ``IDCG`` is the DCG of a list with
    ``min(n_relevant, k)`` relevant items first; 0 for users with no relevant item.
    """
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    width = min(k, hits.shape[1])
    dcg = hits[:, :width].astype(np.float64) @ discounts[:width]
    ideal_cum = np.concatenate([[0.0], np.cumsum(discounts)])
    n = np.minimum(np.asarray(n_relevant, dtype=np.int64), k)
    idcg = ideal_cum[n]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def average_precision_at_k(hits: BoolMatrix, n_relevant: ArrayLike, k: int) -> FloatArray:
    """AP@k per user: ``Σ_{j<k} precision@(j+1) · hit_j / min(n_relevant, k)``; MAP@k is its mean.

    0 for users with no relevant item.
    """
    h = hits[:, :k].astype(np.float64)
    precision_at_each = np.cumsum(h, axis=1) / (np.arange(h.shape[1]) + 1.0)
    n = np.minimum(np.asarray(n_relevant, dtype=np.float64), k)
    total = (precision_at_each * h).sum(axis=1)
    return np.divide(total, n, out=np.zeros_like(n), where=n > 0)


def catalog_coverage(recommended: Sequence[int] | npt.NDArray[np.int64], n_items: int) -> float:
    """Share of the catalog recommended to at least one user: ``|∪ lists| / n_items``.

    Negative entries (padding of short lists) are ignored; 0 for an empty catalog.
    """
    rec = np.asarray(recommended, dtype=np.int64).ravel()
    if n_items <= 0:
        return 0.0
    return float(np.unique(rec[rec >= 0]).size / n_items)
