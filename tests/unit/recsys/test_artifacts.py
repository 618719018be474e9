"""Artifacts round-trip exactly, load without pickle, and refuse corruption by file name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend.recsys.algorithms import AlgoSpec, fit
from backend.recsys.artifacts import load_artifact, save_artifact
from backend.recsys.errors import CorruptArtifactError, DataError
from backend.recsys.model import FactorModel
from backend.recsys.synthetic import generate_ratings


@pytest.fixture(scope="module")
def model() -> FactorModel:
    ratings = generate_ratings(60, 40, 800, rank=2, seed=1).ratings
    return fit(ratings, AlgoSpec("svd", {"n_factors": 6, "n_epochs": 3, "lr_bu": 0.01}))


METRICS = {"rmse": 0.93, "mae": np.float64(0.73), "folds": [0.9, 0.95], "mpe": None}


def test_round_trip_is_exact(tmp_path: Path, model: FactorModel) -> None:
    path = save_artifact(model, tmp_path, "v1", metrics=METRICS, fingerprint="abc123")
    assert path == tmp_path / "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1"]  # no temporary directory left
    loaded = load_artifact(path)
    m = loaded.model
    for name in ("user_ids", "item_ids", "user_bias", "item_bias", "user_factors",
                 "item_factors", "seen_indptr", "seen_indices", "item_popularity"):  # fmt: skip
        np.testing.assert_array_equal(getattr(m, name), getattr(model, name), err_msg=name)
    assert (m.global_mean, m.rating_scale, m.algorithm) == (
        model.global_mean, model.rating_scale, model.algorithm,
    )  # fmt: skip
    assert m.params == model.params
    assert loaded.metrics == {"rmse": 0.93, "mae": 0.73, "folds": [0.9, 0.95], "mpe": None}
    assert loaded.fingerprint == "abc123"
    assert set(loaded.manifest["files"]) == {
        "factors.npz", "ids.npz", "params.json", "metrics.json", "fingerprint",
    }  # fmt: skip
    np.testing.assert_array_equal(m.scores(3), model.scores(3))


def test_arrays_load_without_pickle(tmp_path: Path, model: FactorModel) -> None:
    path = save_artifact(model, tmp_path, "v1", metrics={}, fingerprint="f")
    with np.load(path / "factors.npz", allow_pickle=False) as data:
        assert set(data.files) == {
            "user_factors", "item_factors", "user_bias", "item_bias", "seen_indptr",
            "seen_indices", "item_popularity",
        }  # fmt: skip
    with np.load(path / "ids.npz", allow_pickle=False) as data:
        assert data["user_ids"].tolist() == model.user_ids.tolist()


def test_a_flipped_byte_is_caught_and_the_file_named(tmp_path: Path, model: FactorModel) -> None:
    path = save_artifact(model, tmp_path, "v1", metrics={}, fingerprint="f")
    blob = bytearray((path / "factors.npz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (path / "factors.npz").write_bytes(bytes(blob))
    with pytest.raises(CorruptArtifactError, match=r"factors\.npz .* does not match manifest"):
        load_artifact(path)


@pytest.mark.parametrize("name", ["ids.npz", "params.json", "fingerprint"])
def test_missing_file_is_named(tmp_path: Path, model: FactorModel, name: str) -> None:
    path = save_artifact(model, tmp_path, "v1", metrics={}, fingerprint="f")
    (path / name).unlink()
    with pytest.raises(CorruptArtifactError, match=f"{name} is missing"):
        load_artifact(path)


def test_edited_metrics_and_broken_manifest(tmp_path: Path, model: FactorModel) -> None:
    path = save_artifact(model, tmp_path, "v1", metrics={"rmse": 0.9}, fingerprint="f")
    (path / "metrics.json").write_text(json.dumps({"rmse": 0.5}))
    with pytest.raises(CorruptArtifactError, match=r"metrics\.json"):
        load_artifact(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptArtifactError, match=r"manifest\.json .* not valid JSON"):
        load_artifact(path)


def test_versions_are_immutable_and_validated(tmp_path: Path, model: FactorModel) -> None:
    save_artifact(model, tmp_path, "2024-01-01.1", metrics={}, fingerprint="f")
    with pytest.raises(DataError, match="already exists"):
        save_artifact(model, tmp_path, "2024-01-01.1", metrics={}, fingerprint="f")
    for bad in ("../escape", "", ".hidden", "a/b"):
        with pytest.raises(DataError, match="must be 1-64 characters"):
            save_artifact(model, tmp_path, bad, metrics={}, fingerprint="f")
    with pytest.raises(DataError, match="store a missing value as None"):
        save_artifact(model, tmp_path, "v2", metrics={"rmse": float("nan")}, fingerprint="f")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2024-01-01.1"]
