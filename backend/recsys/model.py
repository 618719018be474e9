"""The factor model that training produces and serving reads.

A trained latent-factor model predicts ``r̂(u, i) = μ + b_u + b_i + q_i · p_u`` (the formula of
scikit-surprise's SVD; for an unbiased SVD the biases are zero and μ is 0). SVD++ adds the implicit
term ``|N(u)|^-½ Σ_j y_j`` to ``p_u``; the stored ``user_factors`` already include it, so serving
is the same dot product for every algorithm.

IDs are strings at the boundary and compact integers inside: ``user_ids[u]`` is the raw id of
inner user ``u``. ``seen_indptr``/``seen_indices`` are the CSR rows of items each user rated in
training, used to mask seen items without a Python loop (for implicit models, the items with
a positive interaction). Implicit models record ``params["feedback"] = "implicit"``.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
T = TypeVar("T")


@dataclass(frozen=True)
class FactorModel:
    user_ids: npt.NDArray[np.str_]
    item_ids: npt.NDArray[np.str_]
    global_mean: float
    user_bias: FloatArray
    item_bias: FloatArray
    user_factors: FloatArray
    item_factors: FloatArray
    seen_indptr: IntArray
    seen_indices: IntArray
    item_popularity: IntArray
    rating_scale: tuple[float, float] = (1.0, 5.0)
    algorithm: str = "svd"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def n_factors(self) -> int:
        return int(self.item_factors.shape[1])

    @property
    def implicit_feedback(self) -> bool:
        """Whether the model learnt from implicit feedback (scores rank items, not ratings)."""
        return self.params.get("feedback") == "implicit"

    def seen(self, inner_user: int) -> IntArray:
        """Inner ids of the items the user rated in training."""
        start, end = self.seen_indptr[inner_user], self.seen_indptr[inner_user + 1]
        return self.seen_indices[start:end]

    def scores(self, inner_user: int) -> FloatArray:
        """Unclipped estimates for every item: one matrix-vector product."""
        return (
            self.global_mean
            + self.user_bias[inner_user]
            + self.item_bias
            + self.item_factors @ self.user_factors[inner_user]
        )


def per_model(build: Callable[[FactorModel], T]) -> Callable[[FactorModel], T]:
    """``build`` memoised per live model.

    The first call for a model builds; later calls with the same object return that result
    (a model is frozen, so what was derived from it stays true), and the entry is dropped when
    the model is garbage-collected, so a replaced model's indexes do not outlive it.
    """
    cache: dict[int, tuple[weakref.ref[FactorModel], T]] = {}

    @functools.wraps(build)
    def cached(model: FactorModel) -> T:
        key = id(model)
        hit = cache.get(key)
        if hit is not None and hit[0]() is model:
            return hit[1]
        value = build(model)
        cache[key] = (weakref.ref(model, lambda _r: cache.pop(key, None)), value)
        return value

    return cached
