from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from backend.pipeline.als import ALSParams, ALSTuning, frame_to_spark, prepare
from backend.pipeline.als_search import best_trial, run_trials, temporal_split
from backend.recsys.errors import DataError
from backend.recsys.ranking import interaction_holdout

TUNING = ALSTuning(partitions=1, checkpoint_interval=0)


def clicks(n_users: int = 30, n_items: int = 16, seed: int = 0) -> pd.DataFrame:
    """Users of two tastes click items of their parity, at distinct times."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        liked = [i for i in range(n_items) if i % 2 == u % 2]
        for t, i in enumerate(rng.permutation(liked)[: 5 + u % 4]):
            rows.append((f"u{u}", f"i{i}", 1.0, 1000 * u + t))
    return pd.DataFrame(rows, columns=["user", "item", "confidence", "timestamp"])


def test_temporal_split_holds_out_what_the_pandas_holdout_does(spark: Any) -> None:
    frame = clicks()
    prepared = prepare(frame_to_spark(spark, frame), "confidence", TUNING)
    try:
        _, test = temporal_split(prepared, 3)
        held = test.select("u", "i").toPandas()
    finally:
        prepared.release()
    pairs = {
        (str(prepared.user_ids[u]), str(prepared.item_ids[i]))
        for u, i in zip(held["u"], held["i"], strict=True)
    }
    _, expected = interaction_holdout(frame, 3)
    assert pairs == set(zip(expected["user"], expected["item"], strict=True))


def test_implicit_trials_share_one_split_and_the_best_has_the_highest_ndcg(spark: Any) -> None:
    prepared = prepare(frame_to_spark(spark, clicks()), "confidence", TUNING)
    candidates = [
        ALSParams(rank=r, max_iter=4, reg_param=0.05, alpha=2.0, implicit=True) for r in (1, 4)
    ]
    try:
        trials = run_trials(prepared, candidates, TUNING, n_test=2, top_k=5)
        with pytest.raises(DataError, match="all be implicit or all explicit"):
            run_trials(prepared, [candidates[0], ALSParams()], TUNING)
    finally:
        prepared.release()
    assert [t.params.rank for t in trials] == [1, 4]
    assert all(0.0 <= t.metrics["ndcg"] <= 1.0 for t in trials)
    best = best_trial(trials)
    assert best.metrics["ndcg"] == max(t.metrics["ndcg"] for t in trials)
