"""Our folds are surprise's folds, row for row and in the same order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from surprise import Dataset, Reader
from surprise.model_selection import KFold

from backend.recsys.errors import DataError
from backend.recsys.kfold import kfold_splits


def test_folds_match_surprise_kfold_exactly() -> None:
    n = 103
    frame = pd.DataFrame(
        {"user": [f"u{k % 7}" for k in range(n)], "item": [f"i{k}" for k in range(n)],
         "rating": np.arange(n) % 5 + 1.0}
    )  # fmt: skip
    data = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5)))
    ours = kfold_splits(n, 4, seed=11)
    theirs = list(KFold(n_splits=4, random_state=11, shuffle=True).split(data))
    assert len(ours) == 4
    for fold, (trainset, testset) in zip(ours, theirs, strict=True):
        train_raw = [
            (trainset.to_raw_uid(u), trainset.to_raw_iid(i), r)
            for u, i, r in trainset.all_ratings()
        ]
        expected_train = frame.iloc[fold.train]
        assert sorted(train_raw) == sorted(map(tuple, expected_train.values.tolist()))
        # Inner ids follow first appearance in the training rows: the order matches too.
        first_users = list(dict.fromkeys(expected_train["user"]))
        assert [trainset.to_raw_uid(u) for u in range(trainset.n_users)] == first_users
        assert [tuple(t) for t in frame.iloc[fold.test].values.tolist()] == testset


def test_folds_partition_the_rows() -> None:
    folds = kfold_splits(50, 5, seed=0)
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests.tolist()) == list(range(50))
    for f in folds:
        assert f.train.size + f.test.size == 50
        assert not set(f.train) & set(f.test)
    assert [f.test.tolist() for f in folds] == [f.test.tolist() for f in kfold_splits(50, 5, 0)]


@pytest.mark.parametrize(("n", "k", "message"), [(10, 1, "at least 2"), (3, 5, "only 3 ratings")])
def test_bad_k(n: int, k: int, message: str) -> None:
    with pytest.raises(DataError, match=message):
        kfold_splits(n, k, 0)
