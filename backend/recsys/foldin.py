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

A model trained on implicit feedback (``model.implicit_feedback``) takes interaction strengths
``r_i`` (confidences as ``interactions`` builds them; ``r < 0`` a negative) instead of ratings,
and solves the implicit-ALS normal equations (Hu, Koren and Volinsky 2008)

    p_u = (YᵀY + Yᵀ(C_u − I)Y + λI)⁻¹ Yᵀ C_u p(u)

with ``c_ui = 1 + alpha·|r_i|`` on the given items (1 elsewhere), ``p(u)_i = [r_i > 0]`` and
``alpha`` from ``model.params``. For ``item_knn`` the user vector is the 0/1 indicator of the
positive items, which is exactly how that model scores a trained user.
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

__all__ = ["FoldIn", "fold_in", "fold_in_implicit", "recommend_folded"]


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
    reg: float | None,
    existing_user: int | None = None,
) -> FoldIn:
    """Solve one user's factors and bias against the model's fixed item side (see module doc).

    ``ratings`` maps raw item ids to ratings within ``model.rating_scale``; for an implicit
    model, to interaction strengths (``fold_in_implicit``, where ``reg=None`` takes the model's
    own λ). ``reg`` is λ (≥ 0; 0 needs at least ``k + 1`` independent ratings). λ is a total
    over the user's ratings, not a per-rating SGD term; for surprise's default SVD on
    MovieLens 100K, λ ≈ 5 folds a trained user's own ratings back to predictions correlating
    > 0.95 with the trained user's.

    ``existing_user`` (inner id) starts from that user's training items. The model stores
    which items a user rated but not the rating values, so each training item enters with the
    model's own current estimate for it (the trained user reproduces itself approximately);
    a hypothetical rating of the same item **overrides** that entry, and new items are added.
    """
    if model.implicit_feedback:
        return fold_in_implicit(model, ratings, reg=reg, existing_user=existing_user)
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
        base_items = _training_items(model, existing_user)
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


def fold_in_implicit(
    model: FactorModel,
    interactions: Mapping[str, float],
    *,
    reg: float | None = None,
    existing_user: int | None = None,
) -> FoldIn:
    """Solve one user's vector of an implicit model from ``interactions`` (module docstring).

    ``interactions`` maps raw item ids to interaction strengths ``r`` (finite, non-zero).
    ``reg`` is λ, by default the model's own ``regularization`` (which reproduces a trained
    user's exact ALS update). ``existing_user`` starts from that user's training positives, each
    at ``r = 1`` (the model keeps which items, not how strongly); a given item overrides its entry.
    """
    lam = model.params.get("regularization", 0.0) if reg is None else reg
    if not (isinstance(lam, int | float) and math.isfinite(lam) and lam >= 0):
        raise InvalidParameterError(f"reg must be a finite number >= 0, got {reg!r}")
    if not interactions and existing_user is None:
        raise InvalidRatingsError("give at least one interaction to fold a new user in")
    raw_items = list(interactions)
    values = np.empty(len(raw_items), dtype=np.float64)
    for k, raw in enumerate(raw_items):
        r = interactions[raw]
        try:
            value = float(r)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value == 0:
            raise InvalidRatingsError(
                f"interaction with item {raw!r} is {r!r}; give a finite non-zero strength"
            )
        values[k] = value
    items = id_index(model).item_array(raw_items)
    if existing_user is not None:
        base = _training_items(model, existing_user)
        keep = ~np.isin(base, items)
        items = np.concatenate([base[keep], items])
        values = np.concatenate([np.ones(int(keep.sum())), values])
    order = np.argsort(items, kind="stable")
    items, values = items[order], values[order]
    y = model.item_factors
    if model.algorithm == "item_knn":
        x = np.zeros(model.n_factors, dtype=np.float64)
        x[items[values > 0]] = 1.0
    else:
        alpha = float(model.params.get("alpha", 1.0))
        q = y[items]
        lhs = y.T @ y + (q.T * (alpha * np.abs(values))) @ q + float(lam) * np.eye(y.shape[1])
        positive = values > 0
        rhs = q[positive].T @ (1.0 + alpha * values[positive])
        try:
            x = np.asarray(np.linalg.solve(lhs, rhs), dtype=np.float64)
        except np.linalg.LinAlgError:
            raise InvalidRatingsError(
                f"{items.size} interactions do not determine {y.shape[1]} factors with "
                f"reg={lam}; use reg > 0"
            ) from None
    return FoldIn(
        user_vector=np.ascontiguousarray(x, dtype=np.float64),
        user_bias=0.0,
        rated_items=items,
        ratings=values,
        reg=float(lam),
        existing_user=None if existing_user is None else int(existing_user),
    )


def _training_items(model: FactorModel, existing_user: int) -> IntArray:
    if not 0 <= int(existing_user) < model.n_users:
        raise UnknownUserError(
            f"existing_user {existing_user} is out of range; the model has {model.n_users} users"
        )
    return model.seen(int(existing_user))


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


#: λ of a rating model's fold-in when none is asked for: on MovieLens 100K it folds a trained
#: user's own ratings back to predictions correlating > 0.95 with the trained user's.
DEFAULT_FOLD_IN_REG = 5.0


def fold_in_reg(model: FactorModel, reg: float | None) -> float | None:
    """The λ to fold in with: ``reg`` when given, else the default for the model's kind."""
    if reg is not None:
        return reg
    return None if model.implicit_feedback else DEFAULT_FOLD_IN_REG
