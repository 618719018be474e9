"""Raw-id and category lookups against a model's catalogue."""

from __future__ import annotations

import numpy as np
import pytest

from backend.recsys.errors import (
    InvalidParameterError,
    UnknownCategoryError,
    UnknownItemError,
    UnknownUserError,
)
from backend.recsys.indexes import CategoryIndex, IdIndex, id_index
from backend.recsys.model import FactorModel
from backend.recsys.topn import recommend
from tests.unit.recsys.conftest import make_model


@pytest.fixture(scope="module")
def model() -> FactorModel:
    return make_model()


def test_category_index_masks_union_of_categories(model: FactorModel) -> None:
    metadata = {"i0": ["Drama"], "i1": ["Comedy", "Drama"], "i2": ["Horror"], "zzz": ["Drama"]}
    cats = CategoryIndex.from_metadata(model, metadata)
    assert cats.names == ("Comedy", "Drama", "Horror")
    assert np.flatnonzero(cats.mask("Drama")).tolist() == [0, 1]
    assert np.flatnonzero(cats.mask(["Comedy", "Horror"])).tolist() == [1, 2]
    top = recommend(model, 0, 10, exclude_seen=False, allowed_items=cats.mask("Drama"))
    assert sorted(top.items.tolist()) == [0, 1]
    with pytest.raises(UnknownCategoryError, match="known categories"):
        cats.mask("Western")
    with pytest.raises(InvalidParameterError):
        cats.mask([])


def test_id_index_maps_raw_ids_and_names_unknown_ones(model: FactorModel) -> None:
    index = id_index(model)
    assert index is id_index(model)
    assert isinstance(index, IdIndex)
    assert index.user("u7") == 7 and index.item("i42") == 42
    assert index.item_array(["i3", "i1"]).tolist() == [3, 1]
    with pytest.raises(UnknownUserError, match="'nobody'"):
        index.user("nobody")
    with pytest.raises(UnknownItemError, match="'x1', 'x2'"):
        index.item_array(["i1", "x1", "x2"])
