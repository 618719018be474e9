"""The abtest job and the experiments API on the embedded stack (job run in-process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.config import Settings
from backend.jobs import runner


def _user_table(path: Path, ctr: dict[str, float], users: int, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    for variant, p in ctr.items():
        for u in range(users):
            impressions = int(rng.integers(1, 4))
            rows.append((f"{variant}-{u}", variant, impressions, int(rng.random() < p)))
    pd.DataFrame(rows, columns=["user", "variant", "impressions", "clicks"]).to_csv(
        path, index=False
    )
    return path


def test_csv_analysis_is_stored_with_history_and_chart(settings: Settings, tmp_path: Path) -> None:
    csv = _user_table(tmp_path / "exp.csv", {"A": 0.05, "B": 0.08}, users=4000)
    with TestClient(create_app(settings)) as c:
        for _ in range(2):
            r = c.post(
                "/api/v1/experiments/homepage/upload",
                content=csv.read_bytes(),
                headers={"Content-Type": "text/csv"},
            )
            assert r.status_code == 202, r.text
            assert runner.execute(settings, r.json()["id"]) == "succeeded"
        job = c.get(r.headers["Location"]).json()
        assert [s["name"] for s in job["stages"]] == ["load", "analyze", "chart", "store"]
        got = c.get("/api/v1/experiments/homepage/analysis").json()
        latest = got["latest"]
        assert latest["status"] == "ok" and latest["control"] == "A"
        (cmp,) = latest["comparisons"]
        assert cmp["treatment"] == "B" and cmp["decision"] == "treatment_better"
        assert latest["verdict"].startswith("B beats A")
        assert len(got["history"]) == 2 and got["history"][0]["id"] == latest["id"]
        png = c.get(latest["chart"])
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        listed = c.get("/api/v1/experiments").json()["items"]
        assert listed[0]["experiment"] == "homepage" and listed[0]["analyses"] == 2


def test_bad_uploads_and_unknown_experiment_are_clear(settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(settings)) as c:
        r = c.get("/api/v1/experiments/nothing/analysis")
        assert r.status_code == 404 and "no analysis yet" in r.json()["error"]
        r = c.post(
            "/api/v1/experiments/x/upload", content=b"", headers={"Content-Type": "text/csv"}
        )
        assert r.status_code == 422 and "empty" in r.json()["error"]
        assert c.get("/api/v1/experiments/bad name!/analysis").status_code == 422
        bad = tmp_path / "bad.csv"
        bad.write_text("user,variant,impressions,clicks\nu1,A,1,5\nu2,B,1,0\n")
        r = c.post(
            "/api/v1/experiments/x/upload",
            content=bad.read_bytes(),
            headers={"Content-Type": "text/csv"},
        )
        assert runner.execute(settings, r.json()["id"]) == "failed"
        job = c.get(f"/api/v1/jobs/{r.json()['id']}").json()
        assert "clicks" in job["error"] and "impressions" in job["error"]
        params = {"experiment": "x", "source": "csv"}
        r = c.post("/api/v1/jobs", json={"kind": "abtest", "params": params})
        assert r.status_code == 422 and "csv_path" in r.json()["error"]


def test_sample_size_endpoint(settings: Settings) -> None:
    with TestClient(create_app(settings)) as c:
        r = c.get("/api/v1/experiments/sample-size", params={"baseline_ctr": 0.05, "mde_abs": 0.01})
        assert r.status_code == 200
        plan = r.json()
        # 0.05 -> 0.06 at alpha 0.05, power 0.8 needs about 8.1k users per arm.
        assert 8000 < plan["units_control"] == plan["units_per_treatment"] < 8300
        assert plan["units_total"] == 2 * plan["units_control"]
        both = c.get(
            "/api/v1/experiments/sample-size",
            params={"baseline_ctr": 0.05, "mde_abs": 0.01, "mde_rel": 0.1},
        )
        assert both.status_code == 422 and "exactly one" in both.json()["error"]
        assert (
            c.get("/api/v1/experiments/sample-size", params={"baseline_ctr": 2}).status_code == 422
        )
