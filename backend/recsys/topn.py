"""Top-N recommendation for one user of a :class:`FactorModel`, or for a new one.

Scores are the model's unclipped estimates ``μ + b_u + b_i + q_i · p_u``: one matrix-vector
product per user. Filters (items the user rated in training, an explicit exclusion list, an
allowed-items mask such as a category) are applied *before* the cut, so a filtered list still
holds ``n`` items whenever ``n`` eligible items exist. The order follows the package's ranking
rule (score descending, then inner item id ascending; see :mod:`backend.recsys.selection`).

Many users at once: :mod:`backend.recsys.batch`. Raw ids and categories:
:mod:`backend.recsys.indexes`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from backend.recsys.errors import InvalidParameterError, UnknownUserError
from backend.recsys.model import FactorModel, FloatArray, IntArray
from backend.recsys.selection import TopN, check_items, check_mask, check_n, select_one

__all__ = ["TopN", "popular", "recommend", "recommend_vector"]


def _check_user(model: FactorModel, inner_user: int) -> int:
    if not 0 <= int(inner_user) < model.n_users:
        raise UnknownUserError(
            f"inner user {inner_user} is out of range; the model has {model.n_users} users"
        )
    return int(inner_user)


def _rank_masked(
    model: FactorModel,
    scores: FloatArray,
    n: int,
    seen: IntArray | None,
    exclude_items: npt.ArrayLike | None,
    allowed_items: npt.ArrayLike | None,
) -> TopN:
    excluded = check_items(model, exclude_items, "exclude_items")
    allowed = check_mask(model, allowed_items)
    s = scores
    if seen is not None:
        s[seen] = -np.inf
    if excluded is not None:
        s[excluded] = -np.inf
    if allowed is not None:
        s[~allowed] = -np.inf
    items, vals = select_one(s, n)
    return TopN(items=items, scores=vals)


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
    e.g. :meth:`backend.recsys.indexes.CategoryIndex.mask`) is false. Ties are broken by inner
    item id ascending. The list is shorter than ``n`` only when fewer items are eligible.
    """
    n = check_n(n)
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
    n = check_n(n)
    p = np.asarray(user_vector, dtype=np.float64).reshape(-1)
    if p.shape[0] != model.n_factors:
        raise InvalidParameterError(
            f"user_vector has {p.shape[0]} factors; the model has {model.n_factors}"
        )
    scores = model.global_mean + float(user_bias) + model.item_bias + model.item_factors @ p
    seen = check_items(model, seen_items, "seen_items")
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
    n = check_n(n)
    scores = model.item_popularity.astype(np.float64)
    return _rank_masked(model, scores, n, None, exclude_items, allowed_items)
