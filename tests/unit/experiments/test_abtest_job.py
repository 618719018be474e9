"""The abtest job and the experiments API on the embedded stack (job run in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
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


def _per_user_csv(path: Path, users: int = 3000, seed: int = 4) -> Path:
    """Ratio-CTR traffic (several impressions per user, user-level CTR), purchases, and the
    same users' pre-period clicks and impressions."""
    rng = np.random.default_rng(seed)
    frames = []
    for variant, rate in (("A", 0.05), ("B", 0.078)):
        own = rng.beta(rate * 4, (1 - rate) * 4, users)
        imp, pre_imp = 1 + rng.poisson(3, users), 1 + rng.poisson(3, users)
        frames.append(
            pd.DataFrame(
                {
                    "user": [f"{variant}{u}" for u in range(users)],
                    "variant": variant,
                    "impressions": imp,
                    "clicks": rng.binomial(imp, own),
                    "purchases": rng.poisson(0.3, users),
                    "pre_impressions": pre_imp,
                    "pre_clicks": rng.binomial(pre_imp, own),
                }
            )
        )
    pd.concat(frames).to_csv(path, index=False)
    return path


def test_job_runs_cuped_sequential_and_guardrails(settings: Settings) -> None:
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    _per_user_csv(settings.uploads_dir / "live.csv")
    params = {
        "experiment": "live",
        "source": "csv",
        "upload": "live.csv",
        "cuped": True,
        "sequential": True,
        "n_star": 6000,
        "guardrails": ["purchases"],
    }
    with TestClient(create_app(settings)) as c:
        r = c.post("/api/v1/jobs", json={"kind": "abtest", "params": params})
        assert r.status_code in (201, 202), r.text
        assert runner.execute(settings, r.json()["id"]) == "succeeded"
        latest = c.get("/api/v1/experiments/live/analysis").json()["latest"]
    assert latest["metric"] == "ctr" and latest["settings"]["sequential"] is True
    (cmp,) = latest["comparisons"]
    assert cmp["method"] == "clicks/impressions, delta method, CUPED, sequential"
    assert cmp["difference"]["ci"]["method"] == "sequential_cs"
    assert 0 < cmp["cuped"]["variance_reduction"] < 1
    assert cmp["decision"] == "treatment_better"
    (guard,) = latest["guardrails"]
    assert guard["metric"] == "purchases" and guard["harmed"] is False
    assert latest["verdict"].startswith(
        "B beats A on CTR (clicks/impressions, delta method, CUPED, sequential): +"
    )
    assert "no significant harm to purchases per user" in latest["verdict"]


def test_job_params_are_checked(settings: Settings) -> None:
    with TestClient(create_app(settings)) as c:
        for bad in ({"metric": "revenue"}, {"guardrails": ["nope"]}, {"n_star": 0}):
            params = {"experiment": "x", **bad}
            r = c.post("/api/v1/jobs", json={"kind": "abtest", "params": params})
            assert r.status_code == 422, (bad, r.text)


def test_lake_job_with_cuped_reads_the_pre_period(settings: Settings) -> None:
    from tests.unit.pipeline.lake_builder import event, write_batch

    rng = np.random.default_rng(9)
    t0 = 1_700_000_000
    rows = []
    for variant, rate in (("A", 0.1), ("B", 0.1)):
        for u in range(80):
            user = f"{variant}{u}"
            own = rng.beta(rate * 4, (1 - rate) * 4)
            for k in range(4):
                ts = t0 - 3600 + k
                rows.append(event(f"p{user}{k}", user, "i", "impression", ts))
                if rng.random() < own:
                    rows.append(event(f"pc{user}{k}", user, "i", "click", ts))
                kw = {"experiment": "home", "variant": variant}
                rows.append(event(f"e{user}{k}", user, "i", "impression", t0 + k, **kw))
                if rng.random() < own:
                    rows.append(event(f"c{user}{k}", user, "i", "click", t0 + k, **kw))
    write_batch(settings.lake_dir, 0, rows)
    params = {"experiment": "home", "cuped": True, "pre_period_days": 1}
    with TestClient(create_app(settings)) as c:
        r = c.post("/api/v1/jobs", json={"kind": "abtest", "params": params})
        assert runner.execute(settings, r.json()["id"]) == "succeeded", r.text
        latest = c.get("/api/v1/experiments/home/analysis").json()["latest"]
    (cmp,) = latest["comparisons"]
    assert cmp["cuped"]["covariate"] == "pre_clicks, pre_impressions"
    assert cmp["cuped"]["theta"] > 0
    assert latest["metric_variants"][0]["pre_value"] is not None


def test_cli_flags_reach_the_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from backend.cli.app import app
    from backend.config import get_settings

    monkeypatch.setenv("RECFLOW_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    csv = _per_user_csv(tmp_path / "cli.csv", users=800)
    try:
        args = ["abtest", "analyze", "--csv", str(csv), "--json", "--metric", "ctr", "--cuped"]
        args += ["--sequential", "--n-star", "2000", "--guardrail", "purchases,clicks"]
        res = CliRunner().invoke(app, args, prog_name="recflow")
        bad = CliRunner().invoke(
            app, ["abtest", "analyze", "--csv", str(csv), "--guardrail", "revenue"]
        )
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout[res.stdout.index("{") :])
    assert result["settings"]["n_star"] == 2000 and result["settings"]["cuped"] is True
    assert [g["metric"] for g in result["guardrails"]] == ["purchases", "clicks"]
    assert bad.exit_code == 2 and "--guardrail" in bad.output


def test_an_upload_takes_the_analysis_options(settings: Settings, tmp_path: Path) -> None:
    csv = _user_table(tmp_path / "exp.csv", {"A": 0.05, "B": 0.08}, users=2000)
    with TestClient(create_app(settings)) as c:
        r = c.post(
            "/api/v1/experiments/home/upload?metric=clicks&guardrail=ctr&sequential=true&n_star=8000",
            content=csv.read_bytes(),
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 202, r.text
        job = c.get(r.headers["Location"]).json()
        params = job["params"]
        assert params["metric"] == "clicks" and params["guardrails"] == ["ctr"]
        assert params["sequential"] is True and params["n_star"] == 8000
        assert runner.execute(settings, job["id"]) == "succeeded"
        latest = c.get("/api/v1/experiments/home/analysis").json()["latest"]
        assert latest["metric"] == "clicks" and "sequential" in latest["method"]
        assert [g["metric"] for g in latest["guardrails"]] == ["ctr"]
        r = c.post(
            "/api/v1/experiments/home/upload?metric=nonsense",
            content=csv.read_bytes(),
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 422 and "metric" in r.json()["error"]
