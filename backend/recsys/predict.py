"""Vectorized rating predictions from a ``FactorModel``, with surprise's semantics.

For a biased model (SVD, SVD++, BaselineOnly, global mean) the estimate is
``μ + b_u·[u known] + b_i·[i known] + q_i·p_u·[u and i known]``: an unknown user or item
contributes nothing, as in surprise's ``estimate``. For an unbiased SVD the estimate is ``q_i·p_u``
when both are known and otherwise the training mean (surprise's ``default_prediction``). The
result is clipped to the model's rating scale, as ``algo.test`` / ``accuracy.rmse`` see it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from backend.recsys.errors import DataError
from backend.recsys.model import FactorModel, FloatArray


def predict_ratings(
    model: FactorModel,
    users: Sequence[str] | np.ndarray | pd.Series,
    items: Sequence[str] | np.ndarray | pd.Series,
    *,
    fallback: float | None = None,
    clip: bool = True,
) -> FloatArray:
    """Estimated ratings for the pairs ``(users[k], items[k])``.

    ``fallback`` is the rating given when an unbiased SVD cannot predict (unknown user or item);
    pass the training mean to match surprise. It is required only for unbiased SVD models.
    """
    if model.algorithm == "popularity":
        raise DataError("a popularity model ranks items and predicts no ratings")
    u = pd.Index(model.user_ids).get_indexer(pd.Index(np.asarray(users, dtype=object)))
    i = pd.Index(model.item_ids).get_indexer(pd.Index(np.asarray(items, dtype=object)))
    known_u, known_i = u >= 0, i >= 0
    both = known_u & known_i
    dots = np.zeros(len(u), dtype=np.float64)
    if model.n_factors:
        dots[both] = np.einsum("ij,ij->i", model.item_factors[i[both]], model.user_factors[u[both]])
    unbiased = model.algorithm == "svd" and model.params.get("biased") is False
    if unbiased:
        if fallback is None and not both.all():
            raise DataError("predicting unknown users or items with an unbiased SVD needs fallback")
        est = np.where(both, dots, np.float64(fallback if fallback is not None else 0.0))
    else:
        est = (
            model.global_mean
            + np.where(known_u, model.user_bias[np.maximum(u, 0)], 0.0)
            + np.where(known_i, model.item_bias[np.maximum(i, 0)], 0.0)
            + dots
        )
    if clip:
        low, high = model.rating_scale
        est = np.clip(est, low, high)
    return np.asarray(est, dtype=np.float64)
