"""A model version as serving holds it: factors, id index, titles, category index, the mask of
the items that may be served, and the artifact's own item metadata (the catalogue overlays it)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from backend.recsys.artifacts import ITEMS_FILE, load_artifact
from backend.recsys.indexes import CategoryIndex, IdIndex
from backend.recsys.model import FactorModel
from backend.recsys.similar import SimilarityIndex, similarity_index

log = logging.getLogger(__name__)

#: An item's (title, categories) as the artifact's items metadata gives them.
ItemMetadata = tuple[str | None, tuple[str, ...]]


@dataclass(frozen=True, eq=False)
class ServingModel:
    model_id: int
    version: str
    model: FactorModel
    ids: IdIndex
    titles: npt.NDArray[np.object_] | None
    categories: CategoryIndex | None
    loaded_at: datetime
    _similar: list[SimilarityIndex] = field(default_factory=list)
    # Items that may be served, over inner ids (None: all); hidden catalogue items are False.
    visible: npt.NDArray[np.bool_] | None = None
    artifact_items: Mapping[str, ItemMetadata] | None = None

    def similarity(self) -> SimilarityIndex:
        if not self._similar:
            self._similar.append(similarity_index(self.model))
        return self._similar[0]


def load_serving_model(model_id: int, version: str, path: Path) -> ServingModel:
    """The artifact at ``path``, verified, with its id index, titles and category index."""
    loaded = load_artifact(path)
    model = loaded.model
    ids = IdIndex.from_model(model)
    titles = None
    categories = None
    artifact_items: dict[str, ItemMetadata] | None = None
    items = loaded.items
    if items is None and (path / ITEMS_FILE).is_file():
        # Item metadata the manifest does not list is not served: nothing vouches for it.
        log.warning(
            "model %s: %s is not listed in its manifest and is ignored; retrain with items to "
            "serve titles and categories",
            version,
            ITEMS_FILE,
        )
    if items is not None:
        artifact_items = {
            str(r["item"]): (r.get("title"), tuple(r.get("genres") or [])) for r in items
        }
        titles = np.array(
            [artifact_items.get(i, (None, ()))[0] for i in model.item_ids.tolist()], dtype=object
        )
        categories = CategoryIndex.from_metadata(
            model, {i: cats for i, (_, cats) in artifact_items.items()}
        )
    return ServingModel(
        model_id=model_id,
        version=version,
        model=model,
        ids=ids,
        titles=titles,
        categories=categories,
        loaded_at=datetime.now(UTC),
        artifact_items=artifact_items,
    )
