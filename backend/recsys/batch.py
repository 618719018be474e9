"""Top-N of many users at once, one block of users per matrix-matrix product.

Each block is scored as ``P_block · Q_allowedᵀ`` with the biases riding along in the product, its
seen items masked from the model's CSR rows, and cut with the package's ranking rule
(:mod:`backend.recsys.selection`). The block size comes from a memory budget, so working memory
stays bounded whatever the number of users.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.recsys.errors import InvalidParameterError, UnknownUserError
from backend.recsys.model import FactorModel, IntArray
from backend.recsys.selection import TopN, check_items, check_mask, check_n, select_rows

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "TopNBatch",
    "TopNBlock",
    "block_rows",
    "iter_topn_blocks",
    "recommend_many",
]

#: Default working-memory bound of one block of users (scores, partition copy and mask).
DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024


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
    n = check_n(n)
    users = (
        np.arange(model.n_users, dtype=np.int64)
        if inner_users is None
        else np.asarray(inner_users, dtype=np.int64).reshape(-1)
    )
    if users.size and (users.min() < 0 or users.max() >= model.n_users):
        bad = users[(users < 0) | (users >= model.n_users)][:10].tolist()
        raise UnknownUserError(f"inner users out of range 0..{model.n_users - 1}: {bad}")
    excluded = check_items(model, exclude_items, "exclude_items")
    allowed = check_mask(model, allowed_items)
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
        cols_top, vals_top, counts = select_rows(scores, n)
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
    """:func:`backend.recsys.topn.recommend` for several inner users (``None`` = all) at once,
    in blocked matrix-matrix products.

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
        k = min(check_n(n), model.n_items)
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
