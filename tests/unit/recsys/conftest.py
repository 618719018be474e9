"""Random factor models with many tied scores, and the brute-force ranking they are checked
against (score descending, then inner item id ascending)."""

from __future__ import annotations

import numpy as np

from backend.recsys.model import FactorModel


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
