"""The catalogue over a model: titles and categories from the catalogue where it has them (over
the artifact's item metadata), and the mask of the items that may be served (hidden ones not).

Built once per (model, catalogue version) when either changes, never per request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from backend.catalogue.service import CatalogueSnapshot
from backend.recsys.indexes import CategoryIndex
from backend.serving.model import ItemMetadata, ServingModel


def overlay(sm: ServingModel, catalogue: CatalogueSnapshot | None) -> ServingModel:
    """``sm`` as served under ``catalogue``: for each item the model knows, the catalogue's
    title and categories win when it has them (non-empty), and a hidden item is masked out."""
    if catalogue is None or not catalogue.items:
        return sm
    known = sm.model.item_ids.tolist()
    artifact: Mapping[str, ItemMetadata] = sm.artifact_items or {}
    titles: list[str | None] = []
    categories: dict[str, tuple[str, ...]] = {}
    visible = np.ones(len(known), dtype=np.bool_)
    for inner, raw in enumerate(known):
        title, cats = artifact.get(raw, (None, ()))
        entry = catalogue.items.get(raw)
        if entry is not None:
            title = entry.title if entry.title is not None else title
            cats = entry.categories or cats
            visible[inner] = not entry.hidden
        titles.append(title)
        if cats:
            categories[raw] = cats
    return dataclasses.replace(
        sm,
        titles=np.array(titles, dtype=object),
        categories=CategoryIndex.from_metadata(sm.model, categories) if categories else None,
        visible=None if visible.all() else visible,
    )
