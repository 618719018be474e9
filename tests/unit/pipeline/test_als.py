from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backend.config import Settings
from backend.pipeline.als import (
    ALSParams,
    ALSTuning,
    cross_validate_prepared,
    fit_als,
    frame_to_spark,
    prepare,
    tuning_from_settings,
    validate_and_fit,
)
from backend.recsys.errors import DataError


def two_tastes(n_users: int = 40, n_items: int = 20) -> pd.DataFrame:
    """Even users like even items, odd users odd items (ratings 5), and rate others 1."""
    rows = []
    for u in range(n_users):
        for i in range(n_items):
            if (u + i) % 3 == 0:
                continue
            rows.append((f"u{u}", f"i{i}", 5.0 if u % 2 == i % 2 else 1.0, u * 100 + i))
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


def test_explicit_als_becomes_a_factor_model(spark: Any) -> None:
    frame = two_tastes()
    model = fit_als(frame_to_spark(spark, frame), ALSParams(rank=4, max_iter=10, reg_param=0.05))
    assert model.algorithm == "als"
    assert model.params["feedback"] == "explicit"
    assert sorted(model.user_ids) == sorted(frame["user"].unique())
    assert model.user_factors.shape == (40, 4) and model.item_factors.shape == (20, 4)
    assert model.global_mean == 0 and not model.user_bias.any() and not model.item_bias.any()
    u = int(np.flatnonzero(model.user_ids == "u0")[0])
    seen = set(model.item_ids[model.seen(u)])
    assert seen == set(frame.loc[frame["user"] == "u0", "item"])
    assert model.item_popularity.sum() == len(frame)
    scores = model.scores(u)
    like = int(np.flatnonzero(model.item_ids == "i2")[0])
    dislike = int(np.flatnonzero(model.item_ids == "i1")[0])
    assert scores[like] == pytest.approx(5.0, abs=0.5)
    assert scores[dislike] == pytest.approx(1.0, abs=0.5)


def test_implicit_als_ranks_the_users_taste_first(spark: Any) -> None:
    frame = two_tastes()
    positives = frame.loc[frame["rating"] >= 4].rename(columns={"rating": "confidence"})
    params = ALSParams(rank=4, max_iter=10, reg_param=0.01, alpha=10.0, implicit=True)
    model = fit_als(frame_to_spark(spark, positives), params)
    assert model.params["feedback"] == "implicit" and model.params["alpha"] == 10.0
    u = int(np.flatnonzero(model.user_ids == "u0")[0])
    top = model.item_ids[np.argsort(-model.scores(u))[:5]]
    assert all(int(item[1:]) % 2 == 0 for item in top)


def test_folds_and_the_final_fit_reuse_one_persisted_frame(spark: Any) -> None:
    frame = frame_to_spark(spark, two_tastes())
    tuning = ALSTuning(storage_level="MEMORY_AND_DISK", partitions=2)
    prepared = prepare(frame, "rating", tuning)
    try:
        assert prepared.frame.storageLevel.useMemory
        assert prepared.frame.rdd.getNumPartitions() == 2
        cv = cross_validate_prepared(prepared, ALSParams(rank=4, reg_param=0.05), tuning, k=3)
        assert [f.fold for f in cv.folds] == [0, 1, 2]
        assert cv.means["rmse"] < 1.0  # the ratings are 1 or 5: a mean guess is off by 2
        again = cross_validate_prepared(prepared, ALSParams(rank=4, reg_param=0.05), tuning, k=3)
        assert again.means == pytest.approx(cv.means)  # same seed, same folds, same fits
    finally:
        prepared.release()


def test_holdout_and_implicit_validation(spark: Any) -> None:
    frame = two_tastes()
    positives = frame.loc[frame["rating"] >= 4].rename(columns={"rating": "confidence"})
    params = ALSParams(rank=4, reg_param=0.01, alpha=10.0, implicit=True)
    cv, model = validate_and_fit(
        frame_to_spark(spark, positives), params, ALSTuning(storage_level="NONE"), k=4,
        holdout=True,
    )  # fmt: skip
    assert len(cv.folds) == 1
    assert cv.means["ndcg"] > 0.5
    assert model.n_users == 40


def test_bad_params_are_refused() -> None:
    with pytest.raises(DataError, match="rank"):
        ALSParams(rank=0)
    with pytest.raises(DataError, match="alpha"):
        ALSParams(alpha=-1.0)


def test_tuning_comes_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        als_storage_level="NONE",
        als_partitions=0,
        als_user_blocks=3,
        als_checkpoint_interval=0,
    )
    tuning = tuning_from_settings(settings)
    assert tuning.storage_level == "NONE" and tuning.partitions == 0
    assert tuning.user_blocks == 3 and tuning.item_blocks == 0
    assert tuning.checkpoint_interval == 0
    assert tuning.checkpoint_dir == tmp_path / "spark-checkpoints"
