"""The ranking rule, the ranked list it produces, and the checks of a top-N request.

Ranking rule (used everywhere in this package and by the faithfulness tests): items are ordered by
score descending, and equal scores by **inner item id ascending**. Inner ids are the model's
compact item indices (``model.item_ids[i]`` is the raw id of inner item ``i``), so the order is
deterministic for a given model. Ineligible items (filtered out, or a non-finite score) carry the
score −inf and are never selected.

Selection is a partial sort: a lower bound of each row's n-th largest score (the n-th largest of
column-chunk maxima, or the exact ``np.partition`` value where that bound admits too many), every
item at or above it is a candidate, and only the candidates are sorted by ``(-score, item id)``.
Ties at the cut therefore keep the smallest ids, which a bare ``argpartition`` would not
guarantee. Nothing loops over items in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.recsys.errors import InvalidParameterError, UnknownItemError
from backend.recsys.model import FactorModel, FloatArray, IntArray

__all__ = [
    "TopN",
    "check_items",
    "check_mask",
    "check_n",
    "rank_scores",
    "select_one",
    "select_rows",
]

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TopN:
    """One ranked list: ``items[r]`` (inner ids) has score ``scores[r]``, best first."""

    items: IntArray
    scores: FloatArray

    def __len__(self) -> int:
        return int(self.items.shape[0])

    def raw(self, model: FactorModel) -> list[tuple[str, float]]:
        """The list as ``(raw item id, score)`` pairs."""
        return list(zip(model.item_ids[self.items].tolist(), self.scores.tolist(), strict=True))


def check_n(n: int) -> int:
    """``n`` as an int; :class:`InvalidParameterError` unless it is a positive integer."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InvalidParameterError(f"n must be a positive integer, got {n!r}")
    return int(n)


def check_items(model: FactorModel, items: npt.ArrayLike | None, what: str) -> IntArray | None:
    """Inner item ids as a flat int64 array (``None`` stays ``None``); :class:`UnknownItemError`
    names the ids outside the model's catalogue."""
    if items is None:
        return None
    arr = np.asarray(items, dtype=np.int64).reshape(-1)
    bad = arr[(arr < 0) | (arr >= model.n_items)]
    if bad.size:
        raise UnknownItemError(
            f"{what} holds inner item ids outside 0..{model.n_items - 1}: {bad[:10].tolist()}"
        )
    return arr


def check_mask(model: FactorModel, mask: npt.ArrayLike | None) -> BoolArray | None:
    """An allowed-items mask, which must be boolean with one entry per item of the model."""
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.dtype != np.bool_ or arr.shape != (model.n_items,):
        raise InvalidParameterError(
            f"allowed_items must be a boolean mask of shape ({model.n_items},), "
            f"got dtype {arr.dtype} and shape {arr.shape}"
        )
    return arr


def select_rows(scores: npt.NDArray[np.floating[Any]], n: int) -> tuple[IntArray, Any, IntArray]:
    """Top ``n`` columns of each row of ``scores`` (−inf = ineligible) by (−score, column).

    Returns ``(columns, scores, counts)`` of shape ``(rows, k)``, ``(rows, k)`` and ``(rows,)``
    with ``k = min(n, columns)``; padding is ``-1`` / NaN. ``scores`` is not modified.
    """
    n_rows, n_cols = scores.shape
    k = min(n, n_cols)
    out_cols = np.full((n_rows, k), -1, dtype=np.int64)
    out_scores = np.full((n_rows, k), np.nan, dtype=scores.dtype)
    if k == 0 or n_rows == 0:
        return out_cols, out_scores, np.zeros(n_rows, dtype=np.int64)
    floor = np.finfo(scores.dtype).min
    # A cheap lower bound of each row's k-th largest score: the k-th largest of the maxima of
    # (at least k) column chunks. k chunk maxima are k distinct entries >= the bound, so every
    # true top-k entry is a candidate; typically only a few more are.
    # Trailing columns that do not fill a chunk are left out of the bound (still a valid bound);
    # splitting the column axis is a view, so this is one vectorized pass.
    n_chunks = min(n_cols, max(8 * k, 64))
    width = n_cols // n_chunks
    chunk_max = scores[:, : n_chunks * width].reshape(n_rows, n_chunks, width).max(axis=2)
    threshold = np.partition(chunk_max, n_chunks - k, axis=1)[:, n_chunks - k]
    # Filtered entries are −inf; flooring at the smallest finite value keeps them out.
    np.maximum(threshold, floor, out=threshold)
    mask = scores >= threshold[:, None]
    row_cap = max(4 * k, 64)
    if np.count_nonzero(mask) > n_rows * row_cap:
        # Rare (heavy filtering or many equal scores): use the exact k-th largest score for
        # the rows with too many candidates, so memory stays bounded.
        heavy = np.flatnonzero(np.count_nonzero(mask, axis=1) > row_cap)
        sub = scores[heavy]
        exact = np.partition(sub, n_cols - k, axis=1)[:, n_cols - k]
        np.maximum(exact, floor, out=exact)
        mask[heavy] = sub >= exact[:, None]
    rows, cols = np.divmod(np.flatnonzero(mask), n_cols)
    vals = scores[rows, cols]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(n_rows))
    rank = np.arange(rows.shape[0]) - starts[rows]
    keep = rank < k
    rows, cols, vals, rank = rows[keep], cols[keep], vals[keep], rank[keep]
    out_cols[rows, rank] = cols
    out_scores[rows, rank] = vals
    counts = np.bincount(rows, minlength=n_rows).astype(np.int64)
    return out_cols, out_scores, counts


def select_one(scores: FloatArray, n: int) -> tuple[IntArray, FloatArray]:
    """Top ``n`` of one score vector (−inf = ineligible) by (−score, index): the single-user
    fast path. ``argpartition`` finds the n-th best score; only the entries at or above it
    (ties included, so the rule holds at the boundary) are sorted."""
    eligible = int(np.count_nonzero(scores > -np.inf))
    k = min(n, eligible)
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    part = np.argpartition(scores, scores.shape[0] - k)[scores.shape[0] - k :]
    kth = scores[part].min()
    cand = np.flatnonzero(scores >= kth)
    order = np.lexsort((cand, -scores[cand]))[:k]
    items = cand[order].astype(np.int64, copy=False)
    return items, scores[items].astype(np.float64, copy=False)


def rank_scores(
    scores: npt.ArrayLike,
    n: int,
    *,
    exclude_items: npt.ArrayLike | None = None,
    allowed_items: npt.ArrayLike | None = None,
) -> TopN:
    """Top ``n`` positions of an arbitrary score vector under the package's ranking rule
    (score descending, then index ascending), after removing ``exclude_items`` and positions
    where ``allowed_items`` is false. Non-finite scores are treated as ineligible."""
    n = check_n(n)
    s = np.array(scores, dtype=np.float64).reshape(1, -1)
    s[~np.isfinite(s)] = -np.inf
    if exclude_items is not None:
        s[0, np.asarray(exclude_items, dtype=np.int64)] = -np.inf
    if allowed_items is not None:
        allowed = np.asarray(allowed_items)
        if allowed.dtype != np.bool_ or allowed.shape != (s.shape[1],):
            raise InvalidParameterError(
                f"allowed_items must be a boolean mask of shape ({s.shape[1]},), "
                f"got dtype {allowed.dtype} and shape {allowed.shape}"
            )
        s[0, ~allowed] = -np.inf
    cols, vals, counts = select_rows(s, n)
    c = int(counts[0])
    return TopN(items=cols[0, :c].copy(), scores=vals[0, :c].astype(np.float64))
