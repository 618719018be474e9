"""Top-N: ranking rule, filters before the cut, batching, cold start, categories and ids."""

from __future__ import annotations

import numpy as np
import pytest

from backend.recsys.errors import DataError
from backend.recsys.model import FactorModel
from backend.recsys.topn import (
    CategoryIndex,
    IdIndex,
    InvalidParameterError,
    UnknownCategoryError,
    UnknownItemError,
    UnknownUserError,
    id_index,
    iter_topn_blocks,
    popular,
    rank_scores,
    recommend,
    recommend_many,
    recommend_vector,
)


def make_model(
    n_users: int = 30,
    n_items: int = 200,
    k: int = 4,
    *,
    seed: int = 0,
    quantize: bool = True,
    seen_per_user: int = 15,
) -> FactorModel:
    """A random model; ``quantize`` rounds factors so that many scores tie exactly."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n_users, k))
    q = rng.normal(size=(n_items, k))
    bu = rng.normal(scale=0.3, size=n_users)
    bi = rng.normal(scale=0.3, size=n_items)
    if quantize:
        p, q, bu, bi = (np.round(x * 2) / 2 for x in (p, q, bu, bi))
    counts = rng.integers(0, seen_per_user + 1, size=n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate(
        [np.sort(rng.choice(n_items, size=c, replace=False)) for c in counts]
    ).astype(np.int64)
    return FactorModel(
        user_ids=np.array([f"u{u}" for u in range(n_users)]),
        item_ids=np.array([f"i{i}" for i in range(n_items)]),
        global_mean=3.5,
        user_bias=bu,
        item_bias=bi,
        user_factors=p,
        item_factors=q,
        seen_indptr=indptr,
        seen_indices=indices,
        item_popularity=rng.integers(0, 5, size=n_items).astype(np.int64),
    )


def reference(
    scores: np.ndarray, n: int, banned: set[int], allowed: np.ndarray | None = None
) -> list[int]:
    """Brute force: eligible items sorted by (-score, item id)."""
    eligible = [
        i
        for i in range(scores.shape[0])
        if i not in banned and (allowed is None or bool(allowed[i]))
    ]
    return sorted(eligible, key=lambda i: (-scores[i], i))[:n]


@pytest.fixture(scope="module")
def model() -> FactorModel:
    return make_model()


def test_matches_brute_force_with_ties_broken_by_item_id(model: FactorModel) -> None:
    ties = 0
    for u in range(model.n_users):
        scores = model.scores(u)
        top = recommend(model, u, 10)
        assert top.items.tolist() == reference(scores, 10, set(model.seen(u).tolist()))
        assert np.array_equal(top.scores, scores[top.items])
        ties += len(set(scores[top.items].tolist())) < len(top)
    assert ties > 0, "the quantized model should produce tied scores"


def test_filters_apply_before_the_cut(model: FactorModel) -> None:
    allowed = np.zeros(model.n_items, dtype=bool)
    allowed[::3] = True
    exclude = np.array([0, 3, 6, 9, 12])
    for u in range(model.n_users):
        top = recommend(model, u, 12, exclude_items=exclude, allowed_items=allowed)
        banned = set(model.seen(u).tolist()) | set(exclude.tolist())
        assert top.items.tolist() == reference(model.scores(u), 12, banned, allowed)
        assert len(top) == 12
        assert allowed[top.items].all() and not np.isin(top.items, exclude).any()


def test_short_list_when_few_items_are_eligible(model: FactorModel) -> None:
    allowed = np.zeros(model.n_items, dtype=bool)
    allowed[[5, 50, 150]] = True
    top = recommend(model, 0, 10, exclude_seen=False, allowed_items=allowed)
    assert sorted(top.items.tolist()) == [5, 50, 150]
    none = recommend(model, 0, 10, allowed_items=np.zeros(model.n_items, dtype=bool))
    assert len(none) == 0


def test_exclude_seen_false_can_return_seen_items(model: FactorModel) -> None:
    u = int(np.argmax(np.diff(model.seen_indptr)))
    top = recommend(model, u, model.n_items, exclude_seen=False)
    assert len(top) == model.n_items
    assert top.items.tolist() == reference(model.scores(u), model.n_items, set())


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


def test_all_scores_equal_ranks_by_id() -> None:
    flat = make_model(n_users=2, n_items=500, k=0, seed=1, seen_per_user=0)
    flat = FactorModel(**{**flat.__dict__, "item_bias": np.zeros(500), "user_bias": np.zeros(2)})
    assert recommend(flat, 0, 5).items.tolist() == [0, 1, 2, 3, 4]
    assert recommend_many(flat, [1], 5).items[0].tolist() == [0, 1, 2, 3, 4]


def test_recommend_vector_equals_recommend_for_a_trained_user(model: FactorModel) -> None:
    u = 4
    top = recommend_vector(
        model, model.user_factors[u], model.user_bias[u], 10, seen_items=model.seen(u)
    )
    assert top.items.tolist() == recommend(model, u, 10).items.tolist()
    with pytest.raises(InvalidParameterError, match="the model has 4"):
        recommend_vector(model, np.zeros(3), 0.0, 10)


def test_popular_ranks_by_count_then_id(model: FactorModel) -> None:
    top = popular(model, 15, exclude_items=[0])
    pop = model.item_popularity
    expected = sorted((i for i in range(model.n_items) if i != 0), key=lambda i: (-pop[i], i))
    assert top.items.tolist() == expected[:15]
    assert top.scores.tolist() == pop[top.items].astype(float).tolist()


def test_rank_scores_treats_non_finite_as_ineligible() -> None:
    top = rank_scores([1.0, np.nan, 3.0, np.inf, 3.0], 5)
    assert top.items.tolist() == [2, 4, 0]


def test_raw_output(model: FactorModel) -> None:
    top = recommend(model, 1, 3)
    assert [i for i, _ in top.raw(model)] == [f"i{i}" for i in top.items]


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


def test_bad_requests_raise_domain_errors(model: FactorModel) -> None:
    with pytest.raises(InvalidParameterError, match="positive integer"):
        recommend(model, 0, 0)
    with pytest.raises(UnknownUserError, match="out of range"):
        recommend(model, model.n_users, 5)
    with pytest.raises(UnknownItemError, match="exclude_items"):
        recommend(model, 0, 5, exclude_items=[model.n_items])
    with pytest.raises(InvalidParameterError, match="boolean mask"):
        recommend(model, 0, 5, allowed_items=np.ones(3, dtype=bool))
    with pytest.raises(UnknownUserError):
        recommend_many(model, [0, -1], 5)
    with pytest.raises(InvalidParameterError, match="float32 or float64"):
        recommend_many(model, [0], 5, dtype=np.int32)
    assert issubclass(UnknownUserError, DataError) and issubclass(UnknownUserError, ValueError)
