"""Vectorized top-N recommendation over a :class:`FactorModel`.

Scores are the model's unclipped estimates ``μ + b_u + b_i + q_i · p_u``: one matrix-vector
product per user, or one matrix-matrix product per block of users. Filters (items the user rated
in training, an explicit exclusion list, an allowed-items mask such as a category) are applied
*before* the cut, so a filtered list still holds ``n`` items whenever ``n`` eligible items exist.

Ranking rule (used everywhere in this package and by the faithfulness tests): items are ordered by
score descending, and equal scores by **inner item id ascending**. Inner ids are the model's
compact item indices (``model.item_ids[i]`` is the raw id of inner item ``i``), so the order is
deterministic for a given model.

Selection is a partial sort: a lower bound of each row's n-th largest score (the n-th largest of
column-chunk maxima, or the exact ``np.partition`` value where that bound admits too many), every
item at or above it is a candidate, and only the candidates are sorted by ``(-score, item id)``.
Ties at the cut therefore keep the smallest ids, which a bare ``argpartition`` would not
guarantee. Nothing loops over items in Python.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.recsys.errors import DataError
from backend.recsys.model import FactorModel, FloatArray, IntArray

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "CategoryIndex",
    "IdIndex",
    "InvalidParameterError",
    "InvalidRatingsError",
    "TopN",
    "TopNBatch",
    "TopNBlock",
    "UnknownCategoryError",
    "UnknownItemError",
    "UnknownUserError",
    "block_rows",
    "id_index",
    "iter_topn_blocks",
    "popular",
    "rank_scores",
    "recommend",
    "recommend_many",
    "recommend_vector",
]

BoolArray = npt.NDArray[np.bool_]

#: Default working-memory bound of one block of users (scores, partition copy and mask).
DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024


class UnknownUserError(DataError):
    """A user id (raw or inner) that the model was not trained on."""


class UnknownItemError(DataError):
    """An item id (raw or inner) that the model does not know."""


class UnknownCategoryError(DataError):
    """A category name that no item carries."""


class InvalidRatingsError(DataError):
    """Ratings that cannot be used (outside the rating scale, not finite, empty)."""


class InvalidParameterError(DataError):
    """A request parameter out of range (``n < 1``, a mask of the wrong length, ...)."""


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


@dataclass(frozen=True)
class TopNBlock:
    """Top-N of a block of users: row ``r`` belongs to inner user ``users[r]``.

    ``items`` is ``(len(users), n)``; a row with fewer than ``n`` eligible items is padded with
    ``-1`` in ``items`` and NaN in ``scores``, and ``counts[r]`` says how many entries are real.
    """

    users: IntArray
    items: IntArray
    scores: npt.NDArray[np.floating[Any]]
    counts: IntArray

    def row(self, r: int) -> TopN:
        """Row ``r`` as a :class:`TopN` without padding."""
        c = int(self.counts[r])
        return TopN(items=self.items[r, :c].copy(), scores=self.scores[r, :c].astype(np.float64))


#: The batched result has the same shape as one block: all requested users in one block.
TopNBatch = TopNBlock


# --------------------------------------------------------------------------------------------
# Id mapping


@dataclass(frozen=True)
class IdIndex:
    """Raw id → inner id lookups for one model (dicts built once, O(1) per lookup)."""

    users: Mapping[str, int]
    items: Mapping[str, int]

    @classmethod
    def from_model(cls, model: FactorModel) -> IdIndex:
        """Build the user and item dictionaries of ``model``."""
        return cls(
            users={u: k for k, u in enumerate(model.user_ids.tolist())},
            items={i: k for k, i in enumerate(model.item_ids.tolist())},
        )

    def user(self, raw_user: str) -> int:
        """Inner id of ``raw_user``; :class:`UnknownUserError` if the model never saw it."""
        try:
            return self.users[raw_user]
        except KeyError:
            raise UnknownUserError(
                f"user {raw_user!r} is not in the model; use popular() for a new user or fold "
                "their ratings in with fold_in()"
            ) from None

    def item(self, raw_item: str) -> int:
        """Inner id of ``raw_item``; :class:`UnknownItemError` if the model does not know it."""
        try:
            return self.items[raw_item]
        except KeyError:
            raise UnknownItemError(f"item {raw_item!r} is not in the model's catalogue") from None

    def item_array(self, raw_items: Iterable[str]) -> IntArray:
        """Inner ids of several raw item ids; the error names every unknown id (up to 10)."""
        raws = list(raw_items)
        found = [self.items.get(r, -1) for r in raws]
        unknown = [r for r, k in zip(raws, found, strict=True) if k < 0]
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise UnknownItemError(f"items not in the model's catalogue: {shown}{more}")
        return np.asarray(found, dtype=np.int64)


_ID_INDEX_CACHE: dict[int, tuple[weakref.ref[FactorModel], IdIndex]] = {}


def id_index(model: FactorModel) -> IdIndex:
    """The :class:`IdIndex` of ``model``, built on first use and cached while the model lives."""
    key = id(model)
    hit = _ID_INDEX_CACHE.get(key)
    if hit is not None and hit[0]() is model:
        return hit[1]
    index = IdIndex.from_model(model)
    _ID_INDEX_CACHE[key] = (weakref.ref(model, lambda _r: _ID_INDEX_CACHE.pop(key, None)), index)
    return index


# --------------------------------------------------------------------------------------------
# Categories


@dataclass(frozen=True)
class CategoryIndex:
    """Item categories as a boolean matrix: ``matrix[c, i]`` is true when item ``i`` has category
    ``names[c]``. Items absent from the metadata have no category."""

    names: tuple[str, ...]
    matrix: BoolArray

    @classmethod
    def from_metadata(
        cls, model: FactorModel, metadata: Mapping[str, Iterable[str]]
    ) -> CategoryIndex:
        """Index ``metadata`` (raw item id → category names) against the model's catalogue.

        Metadata for items the model does not know is ignored; the category list is sorted.
        """
        index = id_index(model).items
        item_col: list[int] = []
        cat_names: list[str] = []
        for raw, cats in metadata.items():
            inner = index.get(str(raw))
            if inner is None:
                continue
            for c in cats:
                item_col.append(inner)
                cat_names.append(str(c))
        names, cat_row = np.unique(np.asarray(cat_names, dtype=np.str_), return_inverse=True)
        matrix = np.zeros((names.shape[0], model.n_items), dtype=np.bool_)
        matrix[cat_row, np.asarray(item_col, dtype=np.int64)] = True
        return cls(names=tuple(names.tolist()), matrix=matrix)

    def mask(self, categories: str | Iterable[str]) -> BoolArray:
        """Items carrying any of ``categories`` (their union) as a boolean mask over inner ids."""
        wanted = [categories] if isinstance(categories, str) else list(categories)
        if not wanted:
            raise InvalidParameterError("give at least one category to filter on")
        lookup = {name: k for k, name in enumerate(self.names)}
        unknown = [c for c in wanted if c not in lookup]
        if unknown:
            raise UnknownCategoryError(
                f"unknown categories {unknown}; known categories: {list(self.names)}"
            )
        rows = np.asarray([lookup[c] for c in wanted], dtype=np.int64)
        return np.asarray(self.matrix[rows].any(axis=0), dtype=np.bool_)


# --------------------------------------------------------------------------------------------
# Validation


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise InvalidParameterError(f"n must be a positive integer, got {n!r}")
    return int(n)


def _check_user(model: FactorModel, inner_user: int) -> int:
    if not 0 <= int(inner_user) < model.n_users:
        raise UnknownUserError(
            f"inner user {inner_user} is out of range; the model has {model.n_users} users"
        )
    return int(inner_user)


def _check_items(model: FactorModel, items: npt.ArrayLike | None, what: str) -> IntArray | None:
    if items is None:
        return None
    arr = np.asarray(items, dtype=np.int64).reshape(-1)
    bad = arr[(arr < 0) | (arr >= model.n_items)]
    if bad.size:
        raise UnknownItemError(
            f"{what} holds inner item ids outside 0..{model.n_items - 1}: {bad[:10].tolist()}"
        )
    return arr


def _check_mask(model: FactorModel, mask: npt.ArrayLike | None) -> BoolArray | None:
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.dtype != np.bool_ or arr.shape != (model.n_items,):
        raise InvalidParameterError(
            f"allowed_items must be a boolean mask of shape ({model.n_items},), "
            f"got dtype {arr.dtype} and shape {arr.shape}"
        )
    return arr


# --------------------------------------------------------------------------------------------
# Selection


def _select(scores: npt.NDArray[np.floating[Any]], n: int) -> tuple[IntArray, Any, IntArray]:
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
    n = _check_n(n)
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
    cols, vals, counts = _select(s, n)
    c = int(counts[0])
    return TopN(items=cols[0, :c].copy(), scores=vals[0, :c].astype(np.float64))


def _select_one(scores: FloatArray, n: int) -> tuple[IntArray, FloatArray]:
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


def _rank_masked(
    model: FactorModel,
    scores: FloatArray,
    n: int,
    seen: IntArray | None,
    exclude_items: npt.ArrayLike | None,
    allowed_items: npt.ArrayLike | None,
) -> TopN:
    excluded = _check_items(model, exclude_items, "exclude_items")
    allowed = _check_mask(model, allowed_items)
    s = scores
    if seen is not None:
        s[seen] = -np.inf
    if excluded is not None:
        s[excluded] = -np.inf
    if allowed is not None:
        s[~allowed] = -np.inf
    items, vals = _select_one(s, n)
    return TopN(items=items, scores=vals)


# --------------------------------------------------------------------------------------------
# Single user


def recommend(
    model: FactorModel,
    inner_user: int,
    n: int,
    *,
    exclude_seen: bool = True,
    exclude_items: npt.ArrayLike | None = None,
    allowed_items: npt.ArrayLike | None = None,
) -> TopN:
    """The ``n`` items with the highest estimate ``μ + b_u + b_i + q_i · p_u`` for one user.

    Filters, applied before the cut: the items the user rated in training (``exclude_seen``),
    ``exclude_items`` (inner ids) and items where ``allowed_items`` (boolean mask over inner ids,
    e.g. :meth:`CategoryIndex.mask`) is false. Ties are broken by inner item id ascending. The
    list is shorter than ``n`` only when fewer items are eligible.
    """
    n = _check_n(n)
    u = _check_user(model, inner_user)
    scores = model.scores(u)  # a fresh array: masking it in place is safe
    return _rank_masked(
        model, scores, n, model.seen(u) if exclude_seen else None, exclude_items, allowed_items
    )


def recommend_vector(
    model: FactorModel,
    user_vector: npt.ArrayLike,
    user_bias: float,
    n: int,
    *,
    seen_items: npt.ArrayLike | None = None,
    exclude_items: npt.ArrayLike | None = None,
    allowed_items: npt.ArrayLike | None = None,
) -> TopN:
    """Top ``n`` items for an explicit user (e.g. a folded-in one): scores are
    ``μ + user_bias + b_i + q_i · user_vector``. ``seen_items`` and ``exclude_items`` (inner ids)
    are both removed; ``allowed_items`` is a boolean mask. Same ranking rule as :func:`recommend`.
    """
    n = _check_n(n)
    p = np.asarray(user_vector, dtype=np.float64).reshape(-1)
    if p.shape[0] != model.n_factors:
        raise InvalidParameterError(
            f"user_vector has {p.shape[0]} factors; the model has {model.n_factors}"
        )
    scores = model.global_mean + float(user_bias) + model.item_bias + model.item_factors @ p
    seen = _check_items(model, seen_items, "seen_items")
    return _rank_masked(model, scores, n, seen, exclude_items, allowed_items)


def popular(
    model: FactorModel,
    n: int,
    *,
    exclude_items: npt.ArrayLike | None = None,
    allowed_items: npt.ArrayLike | None = None,
) -> TopN:
    """Cold-start list: the ``n`` items with the most training ratings (``item_popularity``),
    ties by inner item id ascending; the scores are the rating counts."""
    n = _check_n(n)
    scores = model.item_popularity.astype(np.float64)
    return _rank_masked(model, scores, n, None, exclude_items, allowed_items)


# --------------------------------------------------------------------------------------------
# Many users


def block_rows(n_columns: int, itemsize: int, memory_budget: int) -> int:
    """How many users fit in one block within ``memory_budget`` bytes.

    A block holds the score matrix (``itemsize`` bytes per entry) and a boolean candidate mask
    (1 byte per entry); the item-side matrices are shared by all blocks and not counted.
    """
    per_row = max(1, n_columns) * (itemsize + 1)
    return max(1, int(memory_budget) // per_row)


def iter_topn_blocks(
    model: FactorModel,
    inner_users: npt.ArrayLike | None,
    n: int,
    *,
    exclude_seen: bool = True,
    exclude_items: npt.ArrayLike | None = None,
    allowed_items: npt.ArrayLike | None = None,
    dtype: npt.DTypeLike = np.float64,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    block_size: int | None = None,
) -> Iterator[TopNBlock]:
    """Top-N of many users, one :class:`TopNBlock` per block of users (``None`` = all users).

    Each block costs one matrix-matrix product ``P_block · Q_allowedᵀ``; seen items are masked
    from the CSR rows of the block. Working memory per block stays within ``memory_budget``
    bytes (see :func:`block_rows`) whatever the number of users; ``block_size`` overrides it.
    ``dtype=np.float32`` halves memory and speeds the product at float32 precision.
    """
    n = _check_n(n)
    users = (
        np.arange(model.n_users, dtype=np.int64)
        if inner_users is None
        else np.asarray(inner_users, dtype=np.int64).reshape(-1)
    )
    if users.size and (users.min() < 0 or users.max() >= model.n_users):
        bad = users[(users < 0) | (users >= model.n_users)][:10].tolist()
        raise UnknownUserError(f"inner users out of range 0..{model.n_users - 1}: {bad}")
    excluded = _check_items(model, exclude_items, "exclude_items")
    allowed = _check_mask(model, allowed_items)
    ftype = np.dtype(dtype)
    if ftype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise InvalidParameterError(f"dtype must be float32 or float64, got {ftype}")

    # Restricting the columns to the allowed items saves work for narrow category filters.
    columns = np.flatnonzero(allowed) if allowed is not None else None
    if columns is not None:
        position = np.full(model.n_items, -1, dtype=np.int64)
        position[columns] = np.arange(columns.shape[0])
        q = model.item_factors[columns]
        bi = model.item_bias[columns]
    else:
        position = None
        q = model.item_factors
        bi = model.item_bias
    # Biases ride along in the product, so scoring a block is a single matmul and no extra pass:
    # [p_u, 1, μ + b_u] · [q_i, b_i, 1] = μ + b_u + b_i + q_i · p_u.
    n_factors = model.n_factors
    qt = np.empty((n_factors + 2, q.shape[0]), dtype=ftype)
    qt[:n_factors] = q.T
    qt[n_factors] = bi
    qt[n_factors + 1] = 1.0
    n_cols = int(qt.shape[1])
    excluded_cols = excluded if position is None or excluded is None else position[excluded]
    if excluded_cols is not None:
        excluded_cols = excluded_cols[excluded_cols >= 0]

    size = block_size or block_rows(n_cols, ftype.itemsize, memory_budget)
    rows_max = min(size, max(1, users.shape[0]))
    buffer = np.empty((rows_max, n_cols), dtype=ftype)
    left = np.empty((rows_max, n_factors + 2), dtype=ftype)
    left[:, n_factors] = 1.0
    indptr, indices = model.seen_indptr, model.seen_indices
    for start in range(0, users.shape[0], size):
        block = users[start : start + size]
        b = block.shape[0]
        scores = buffer[:b]
        p = left[:b]
        p[:, :n_factors] = model.user_factors[block]
        p[:, n_factors + 1] = model.global_mean + model.user_bias[block]
        np.matmul(p, qt, out=scores)
        if exclude_seen:
            lo, hi = indptr[block], indptr[block + 1]
            lengths = hi - lo
            rows = np.repeat(np.arange(b), lengths)
            # Concatenated seen ranges of the block's users, gathered without a Python loop.
            offsets = np.arange(int(lengths.sum())) - np.repeat(
                np.cumsum(lengths) - lengths, lengths
            )
            cols = indices[np.repeat(lo, lengths) + offsets]
            if position is not None:
                cols = position[cols]
                rows, cols = rows[cols >= 0], cols[cols >= 0]
            scores[rows, cols] = -np.inf
        if excluded_cols is not None:
            scores[:, excluded_cols] = -np.inf
        cols_top, vals_top, counts = _select(scores, n)
        if columns is not None:
            cols_top = np.where(cols_top >= 0, columns[np.maximum(cols_top, 0)], -1)
        yield TopNBlock(users=block, items=cols_top, scores=vals_top, counts=counts)


def recommend_many(
    model: FactorModel,
    inner_users: npt.ArrayLike | None,
    n: int,
    *,
    exclude_seen: bool = True,
    exclude_items: npt.ArrayLike | None = None,
    allowed_items: npt.ArrayLike | None = None,
    dtype: npt.DTypeLike = np.float64,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    block_size: int | None = None,
) -> TopNBatch:
    """:func:`recommend` for several inner users (``None`` = all) at once, in blocked
    matrix-matrix products.

    Row ``r`` of the result is the list of ``inner_users[r]``; rows with fewer eligible items
    than ``n`` are padded (see :class:`TopNBlock`). ``exclude_items`` and ``allowed_items``
    apply to every user.
    """
    blocks = list(
        iter_topn_blocks(
            model,
            inner_users,
            n,
            exclude_seen=exclude_seen,
            exclude_items=exclude_items,
            allowed_items=allowed_items,
            dtype=dtype,
            memory_budget=memory_budget,
            block_size=block_size,
        )
    )
    if not blocks:
        k = min(_check_n(n), model.n_items)
        return TopNBlock(
            users=np.zeros(0, dtype=np.int64),
            items=np.zeros((0, k), dtype=np.int64),
            scores=np.zeros((0, k), dtype=np.dtype(dtype)),
            counts=np.zeros(0, dtype=np.int64),
        )
    return TopNBlock(
        users=np.concatenate([b.users for b in blocks]),
        items=np.concatenate([b.items for b in blocks]),
        scores=np.concatenate([b.scores for b in blocks]),
        counts=np.concatenate([b.counts for b in blocks]),
    )
