"""The implicit-feedback flags of train, validate and search reach the job params."""

from __future__ import annotations

from typing import Any

import pytest

from backend.cli import training
from tests.unit.cli.conftest import Recflow


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []

    def capture(kind: str, params: dict[str, Any], *, quiet: bool = False) -> dict[str, Any]:
        seen.append((kind, params))
        return {"id": 1, "state": "succeeded", "params": params, "result": {}}

    monkeypatch.setattr(training, "run_inline", capture)
    return seen


def test_feedback_gate_and_ranking_flags(
    recflow: Recflow, submitted: list[tuple[str, dict[str, Any]]]
) -> None:
    common = ["--algorithm", "implicit_als", "--set", "factors=32", "--feedback", "events"]
    for args in (
        ["train", *common, "--validate-ranking", "--gate-metric", "ndcg",
         "--param", "validate_ranking.k=20", "--param", "feedback.click=3"],
        ["validate", *common, "--param", "ranking.n_test=10"],
        ["search", *common, "--grid", '{"alpha": [0.5, 2]}', "--param", "ranking.k=5"],
    ):  # fmt: skip
        res = recflow(*args, "--json")
        assert res.exit_code == 0, res.output
    train, validate, search = (p for _, p in submitted)
    assert train == {
        "model": {"algorithm": "implicit_als", "params": {"factors": 32}},
        "feedback": {"source": "events", "click": 3},
        "validate_ranking": {"k": 20},
        "gate_metric": "ndcg",
    }
    assert validate["feedback"] == {"source": "events"} and validate["ranking"] == {"n_test": 10}
    assert search["algorithm"] == "implicit_als" and search["fixed"] == {"factors": 32}
    assert search["ranking"] == {"k": 5} and search["feedback"] == {"source": "events"}


def test_no_validate_ranking_sets_it_off(
    recflow: Recflow, submitted: list[tuple[str, dict[str, Any]]]
) -> None:
    assert recflow("train", "--no-validate-ranking", "--json").exit_code == 0
    assert submitted[0][1]["validate_ranking"] is None


def test_an_implicit_validation_prints_its_ranking(recflow: Recflow) -> None:
    res = recflow(
        "validate", "-f", "synthetic", "--algorithm", "item_knn",
        "--param", "data.n_users=80", "--param", "data.n_items=40",
        "--param", "data.n_ratings=1500",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "item_knn on" in res.stdout and "NDCG@10" in res.stdout and "popularity" in res.stdout
