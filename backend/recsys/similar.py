"""Item-to-item similarity on the item factors.

``sim(i, j) = q_i · q_j / (‖q_i‖ ‖q_j‖)``, the cosine of the angle between the two items' latent
vectors. An item whose factor vector is zero has no direction: its similarity to every item is
defined as 0 (never NaN). Lists exclude the item itself and follow the package's ranking rule
(similarity descending, then inner item id ascending).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from backend.recsys.errors import InvalidParameterError, UnknownItemError
from backend.recsys.model import FactorModel, FloatArray, per_model
from backend.recsys.selection import TopN, rank_scores

__all__ = ["SimilarityIndex", "similar_items", "similarity_index"]


@dataclass(frozen=True)
class SimilarityIndex:
    """Row-normalized item factors: ``unit[i] = q_i / ‖q_i‖`` (a zero row for a zero vector)."""

    unit: FloatArray

    @classmethod
    def from_model(cls, model: FactorModel) -> SimilarityIndex:
        """Normalize the model's item factors once."""
        if model.n_factors == 0:
            raise InvalidParameterError(
                f"the {model.algorithm!r} model has no item factors, so item similarity is "
                "undefined; use a factor model such as SVD"
            )
        q = np.asarray(model.item_factors, dtype=np.float64)
        norms = np.linalg.norm(q, axis=1)
        safe = np.where(norms > 0, norms, 1.0)
        unit = q / safe[:, None]
        unit.setflags(write=False)
        return cls(unit=unit)

    def scores(self, inner_item: int) -> FloatArray:
        """Cosine similarity of ``inner_item`` to every item (one matrix-vector product)."""
        result: FloatArray = self.unit @ self.unit[inner_item]
        return result


@per_model
def similarity_index(model: FactorModel) -> SimilarityIndex:
    """The :class:`SimilarityIndex` of ``model``, built once and cached while the model lives."""
    return SimilarityIndex.from_model(model)


def similar_items(
    model: FactorModel,
    inner_item: int,
    n: int,
    *,
    exclude_items: npt.ArrayLike | None = None,
    allowed_items: npt.ArrayLike | None = None,
    index: SimilarityIndex | None = None,
) -> TopN:
    """The ``n`` items most cosine-similar to ``inner_item`` on the item factors, excluding the
    item itself, ``exclude_items`` and items where ``allowed_items`` is false. Scores are
    cosines in [-1, 1]."""
    if not 0 <= int(inner_item) < model.n_items:
        raise UnknownItemError(
            f"inner item {inner_item} is out of range; the model has {model.n_items} items"
        )
    idx = index if index is not None else similarity_index(model)
    item = int(inner_item)
    excluded = np.asarray([item], dtype=np.int64)
    if exclude_items is not None:
        excluded = np.concatenate([excluded, np.asarray(exclude_items, dtype=np.int64).ravel()])
        bad = excluded[(excluded < 0) | (excluded >= model.n_items)]
        if bad.size:
            raise UnknownItemError(
                f"exclude_items holds inner item ids outside 0..{model.n_items - 1}: "
                f"{bad[:10].tolist()}"
            )
    return rank_scores(idx.scores(item), n, exclude_items=excluded, allowed_items=allowed_items)
