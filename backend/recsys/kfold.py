"""Seeded k-fold splits of a ratings frame, identical to surprise's ``KFold``.

The split is surprise's own code run on row positions instead of ratings, so fold ``f`` here
holds exactly the rows, in exactly the order, that ``surprise.model_selection.KFold(n_splits=k,
random_state=seed, shuffle=True)`` puts in its fold ``f``. Both cross-validation paths therefore
train on identical training sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from surprise.model_selection import KFold

from backend.recsys.errors import DataError
from backend.recsys.model import IntArray


@dataclass(frozen=True, eq=False)
class Fold:
    """Row positions of one fold: ``train`` in surprise's training order, ``test`` the rest."""

    index: int
    train: IntArray
    test: IntArray


class _RowPositions:
    """The part of surprise's ``Dataset`` that ``KFold.split`` uses, over row numbers."""

    def __init__(self, n: int) -> None:
        self.raw_ratings = range(n)

    @staticmethod
    def construct_trainset(raw: list[int]) -> list[int]:
        return raw

    @staticmethod
    def construct_testset(raw: list[int]) -> list[int]:
        return raw


def surprise_kfold(k: int, seed: int) -> KFold:
    """The surprise splitter both cross-validation paths use."""
    return KFold(n_splits=k, random_state=seed, shuffle=True)


def kfold_splits(n_ratings: int, k: int, seed: int) -> tuple[Fold, ...]:
    """The ``k`` folds of ``n_ratings`` rows that surprise's seeded, shuffled ``KFold`` makes."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise DataError(f"k={k!r} folds: k-fold cross-validation needs an integer k of at least 2")
    if k > n_ratings:
        raise DataError(f"k={k} folds but only {n_ratings} ratings; use k <= {n_ratings}")
    data: Any = _RowPositions(n_ratings)
    return tuple(
        Fold(
            index=f, train=np.asarray(train, dtype=np.int64), test=np.asarray(test, dtype=np.int64)
        )
        for f, (train, test) in enumerate(surprise_kfold(k, seed).split(data))
    )
