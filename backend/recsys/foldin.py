"""Fold a user into a trained model without retraining (what-if simulation).

With the item side fixed (``μ``, ``b_i``, ``q_i``), the user's factors ``p_u`` and bias ``b_u``
are the regularized least-squares solution of

    minimize  Σ_{i ∈ R} (r_ui − μ − b_i − b_u − q_i · p_u)²  +  λ (‖p_u‖² + b_u²)

over the given ratings ``R``. With ``x = [p_u; b_u]`` and rows ``a_i = [q_i; 1]`` this is the
``(k+1) × (k+1)`` system ``(AᵀA + λI) x = Aᵀ(r − μ − b)``, solved in closed form.

For a model without biases (an unbiased SVD/NMF: ``μ = 0`` and every bias zero) the bias is not
part of the model's form, so only ``p_u`` is solved (``b_u = 0``). For a model without factors
(BaselineOnly, ``k = 0``) only ``b_u`` is solved. For SVD++ the solution is the *effective*
user vector (``p_u`` plus the implicit term), which is what serving uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from backend.recsys.errors import InvalidParameterError, InvalidRatingsError, UnknownUserError
from backend.recsys.indexes import id_index
from backend.recsys.model import FactorModel, FloatArray, IntArray
from backend.recsys.topn import TopN, recommend_vector

__all__ = ["FoldIn", "fold_in", "recommend_folded"]


@dataclass(frozen=True)
class FoldIn:
    """A folded-in user: ``scores()`` gives ``μ + user_bias + b_i + q_i · user_vector``.

    ``rated_items`` (inner ids, ascending) and ``ratings`` are the ratings the solution was
    fitted to, after merging with an existing user's training items; ``rated_items`` are the
    items to exclude from recommendations.
    """

    user_vector: FloatArray
    user_bias: float
    rated_items: IntArray
    ratings: FloatArray
    reg: float
    existing_user: int | None

    def scores(self, model: FactorModel) -> FloatArray:
        """Unclipped estimates of every item for this user."""
        return (
            model.global_mean
            + self.user_bias
            + model.item_bias
            + model.item_factors @ self.user_vector
        )


def _is_unbiased(model: FactorModel) -> bool:
    return model.global_mean == 0.0 and not model.user_bias.any() and not model.item_bias.any()


def fold_in(
    model: FactorModel,
    ratings: Mapping[str, float],
    *,
    reg: float,
    existing_user: int | None = None,
) -> FoldIn:
    """Solve one user's factors and bias against the model's fixed item side (see module doc).

    ``ratings`` maps raw item ids to ratings within ``model.rating_scale``. ``reg`` is λ
    (≥ 0; 0 needs at least ``k + 1`` independent ratings). λ is a total over the user's
    ratings, not a per-rating SGD term; for surprise's default SVD on MovieLens 100K, λ ≈ 5
    folds a trained user's own ratings back to predictions correlating > 0.95 with the trained
    user's.

    ``existing_user`` (inner id) starts from that user's training items. The model stores
    which items a user rated but not the rating values, so each training item enters with the
    model's own current estimate for it (the trained user reproduces itself approximately);
    a hypothetical rating of the same item **overrides** that entry, and new items are added.
    """
    if not (isinstance(reg, int | float) and math.isfinite(reg) and reg >= 0):
        raise InvalidParameterError(f"reg must be a finite number >= 0, got {reg!r}")
    if not ratings and existing_user is None:
        raise InvalidRatingsError("give at least one rating to fold a new user in")
    low, high = model.rating_scale
    raw_items = list(ratings)
    values = np.empty(len(raw_items), dtype=np.float64)
    for k, raw in enumerate(raw_items):
        r = ratings[raw]
        try:
            value = float(r)
        except (TypeError, ValueError):
            raise InvalidRatingsError(f"rating of item {raw!r} is not a number: {r!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise InvalidRatingsError(
                f"rating of item {raw!r} is {r!r}; ratings must lie in [{low:g}, {high:g}]"
            )
        values[k] = value
    items = id_index(model).item_array(raw_items)

    if existing_user is not None:
        if not 0 <= int(existing_user) < model.n_users:
            raise UnknownUserError(
                f"existing_user {existing_user} is out of range; the model has "
                f"{model.n_users} users"
            )
        base_items = model.seen(int(existing_user))
        base_values = model.scores(int(existing_user))[base_items]
        keep = ~np.isin(base_items, items)
        items = np.concatenate([base_items[keep], items])
        values = np.concatenate([base_values[keep], values])
        if items.size == 0:
            raise InvalidRatingsError(
                f"user {existing_user} has no training items and no ratings were given"
            )

    order = np.argsort(items, kind="stable")
    items, values = items[order], values[order]

    with_bias = not _is_unbiased(model)
    q = model.item_factors[items]
    a = np.hstack([q, np.ones((q.shape[0], 1))]) if with_bias else q
    y = values - model.global_mean - model.item_bias[items]
    width = a.shape[1]
    x: FloatArray
    if width == 0:
        # A model without factors or biases (global mean only) has nothing user-specific.
        x = np.zeros(0, dtype=np.float64)
    else:
        lhs = a.T @ a + float(reg) * np.eye(width)
        try:
            x = np.asarray(np.linalg.solve(lhs, a.T @ y), dtype=np.float64)
        except np.linalg.LinAlgError:
            raise InvalidRatingsError(
                f"{items.size} ratings do not determine {width} unknowns with reg={reg}; "
                "rate more items or use reg > 0"
            ) from None
    k = model.n_factors
    return FoldIn(
        user_vector=np.ascontiguousarray(x[:k], dtype=np.float64),
        user_bias=float(x[k]) if with_bias else 0.0,
        rated_items=items,
        ratings=values,
        reg=float(reg),
        existing_user=None if existing_user is None else int(existing_user),
    )


def recommend_folded(
    model: FactorModel,
    folded: FoldIn,
    n: int,
    *,
    exclude_rated: bool = True,
    exclude_items: npt.ArrayLike | None = None,
    allowed_items: npt.ArrayLike | None = None,
) -> TopN:
    """Top ``n`` items for a folded-in user (see :func:`backend.recsys.topn.recommend_vector`);
    the items the fold-in was fitted to are excluded unless ``exclude_rated`` is false."""
    return recommend_vector(
        model,
        folded.user_vector,
        folded.user_bias,
        n,
        seen_items=folded.rated_items if exclude_rated else None,
        exclude_items=exclude_items,
        allowed_items=allowed_items,
    )
