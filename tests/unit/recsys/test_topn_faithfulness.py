"""Our top-10 equals the top-10 built from scikit-surprise's own predictions.

Reference: for each sampled user, ``algo.predict(uid, iid, clip=False).est`` for every item the
user did not rate in training, sorted by (−estimate, inner item id) — the package's ranking rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from surprise import SVD, Dataset, Reader

from backend.recsys.batch import recommend_many
from backend.recsys.surprise_adapter import factor_model_from_surprise
from backend.recsys.topn import recommend


@pytest.mark.slow
def test_top10_equals_surprise_predictions(ml100k_dir: Path) -> None:
    data = Dataset.load_from_file(str(ml100k_dir / "u.data"), reader=Reader("ml-100k"))
    trainset = data.build_full_trainset()
    algo = SVD(random_state=42).fit(trainset)
    model = factor_model_from_surprise(algo, trainset, algorithm="svd", params={})

    users = np.random.default_rng(2024).choice(trainset.n_users, size=50, replace=False)
    batch = recommend_many(model, users, 10)
    for row, u in enumerate(users):
        uid = trainset.to_raw_uid(int(u))
        seen = {j for j, _ in trainset.ur[int(u)]}
        estimates = [
            (-algo.predict(uid, trainset.to_raw_iid(i), clip=False).est, i)
            for i in trainset.all_items()
            if i not in seen
        ]
        expected = [i for _, i in sorted(estimates)[:10]]
        assert recommend(model, int(u), 10).items.tolist() == expected
        assert batch.items[row].tolist() == expected
        # The reported scores are surprise's estimates.
        assert np.allclose(
            recommend(model, int(u), 10).scores, [-e for e, _ in sorted(estimates)[:10]], atol=1e-9
        )
