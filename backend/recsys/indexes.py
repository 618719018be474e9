"""Lookups against one model's catalogue: raw id → inner id, and item categories as a mask.

Raw ids are the strings clients send; inner ids are the model's compact indices
(``model.user_ids[u]`` is the raw id of inner user ``u``). Both indexes are built once per model
and answer in O(1) per id, so serving never scans the catalogue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from backend.recsys.errors import (
    InvalidParameterError,
    UnknownCategoryError,
    UnknownItemError,
    UnknownUserError,
)
from backend.recsys.model import FactorModel, IntArray, per_model

__all__ = ["CategoryIndex", "IdIndex", "id_index"]

BoolArray = npt.NDArray[np.bool_]


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


@per_model
def id_index(model: FactorModel) -> IdIndex:
    """The :class:`IdIndex` of ``model``, built on first use and cached while the model lives."""
    return IdIndex.from_model(model)


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
