"""Top-N of many users: blocks equal single-user lists, padding, and the memory budget."""

from __future__ import annotations

import numpy as np
import pytest

from backend.recsys.batch import iter_topn_blocks, recommend_many
from backend.recsys.errors import InvalidParameterError, UnknownUserError
from backend.recsys.model import FactorModel
from backend.recsys.topn import recommend
from tests.unit.recsys.conftest import make_model, reference


@pytest.fixture(scope="module")
def model() -> FactorModel:
    return make_model()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("block_size", [1, 7, None])
def test_batched_equals_single(model: FactorModel, dtype: type, block_size: int | None) -> None:
    allowed = np.ones(model.n_items, dtype=bool)
    allowed[1::4] = False
    blocks = list(
        iter_topn_blocks(
            model,
            None,
            10,
            exclude_items=[2, 8],
            allowed_items=allowed,
            dtype=dtype,
            block_size=block_size,
        )
    )
    users = np.concatenate([b.users for b in blocks])
    assert users.tolist() == list(range(model.n_users))
    for block in blocks:
        assert block.scores.dtype == dtype
        for r, u in enumerate(block.users):
            single = recommend(model, int(u), 10, exclude_items=[2, 8], allowed_items=allowed)
            assert block.row(r).items.tolist() == single.items.tolist()
            assert np.allclose(block.row(r).scores, single.scores, atol=1e-5)


def test_recommend_many_pads_short_rows(model: FactorModel) -> None:
    allowed = np.zeros(model.n_items, dtype=bool)
    allowed[:12] = True
    users = [3, 0, 3]
    batch = recommend_many(model, users, 10, allowed_items=allowed)
    assert batch.users.tolist() == users
    assert batch.items.shape == (3, 10)
    for r, u in enumerate(users):
        expected = reference(model.scores(u), 10, set(model.seen(u).tolist()), allowed)
        c = int(batch.counts[r])
        assert batch.items[r, :c].tolist() == expected
        assert (batch.items[r, c:] == -1).all() and np.isnan(batch.scores[r, c:]).all()


def test_recommend_many_without_users(model: FactorModel) -> None:
    empty = recommend_many(model, [], 5)
    assert empty.items.shape == (0, 5)


def test_memory_budget_sets_the_block_size(model: FactorModel) -> None:
    # 200 items x (8 + 1) bytes = 1800 bytes per user: a 9000-byte budget gives blocks of 5.
    blocks = list(iter_topn_blocks(model, None, 3, memory_budget=9000))
    assert [b.users.shape[0] for b in blocks] == [5] * 6


def test_many_items_and_heavy_filtering_stay_exact() -> None:
    big = make_model(n_users=6, n_items=5000, k=3, seed=3, seen_per_user=4000)
    batch = recommend_many(big, range(6), 25, block_size=3)
    for u in range(6):
        expected = reference(big.scores(u), 25, set(big.seen(u).tolist()))
        assert batch.items[u, : batch.counts[u]].tolist() == expected


def test_bad_requests_raise_domain_errors(model: FactorModel) -> None:
    with pytest.raises(UnknownUserError):
        recommend_many(model, [0, -1], 5)
    with pytest.raises(InvalidParameterError, match="float32 or float64"):
        recommend_many(model, [0], 5, dtype=np.int32)
