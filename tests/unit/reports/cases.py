"""Report checks that run on both dialects: tests call them with SQLite or PostgreSQL settings."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import Job
from backend.jobs import runner
from backend.reports import repository
from backend.reports.params import parse_params
from backend.reports.service import build_report
from tests.unit.reports.support import (
    T0,
    app_with_reports,
    assert_report_matches,
    expected_stats,
    insert_runs,
    run_job,
)


def report_of(settings: Settings, **filters: Any) -> dict[str, Any]:
    with session_scope(settings.sqlalchemy_url) as s:
        return build_report(s, parse_params(filters))


def check_real_jobs_match_stored_rows(settings: Settings) -> None:
    """Echo jobs with several stages and sleeps, plus a failing one; then the report job."""
    ok = [run_job(settings, "echo", {"sleep_s": s, "stages": 3}) for s in (0.03, 0.09, 0.06, 0.15)]
    failed = run_job(settings, "echo", {"sleep_s": 0.04, "stages": 2, "fail": True})
    with TestClient(app_with_reports(settings)) as c:
        r = c.post("/api/v1/reports/pipeline", json={"kind": "echo", "recent": 2})
        assert r.status_code == 202, r.text
        assert runner.execute(settings, r.json()["id"]) == "succeeded"
        job = c.get(r.headers["Location"]).json()
        assert [s["name"] for s in job["stages"]] == ["aggregate", "store"]
        result = job["result"]
        assert result["runs"] == 4 and result["kinds"] == {"echo": 4}
        stored = c.get("/api/v1/reports/pipeline", params={"report_id": result["report_id"]})
        assert stored.status_code == 200, stored.text
        stored_report = stored.json()
        assert stored_report["report_id"] == result["report_id"]
        assert stored_report["filters"]["kind"] == "echo"
        latest = c.get("/api/v1/reports/pipeline", params={"report_id": "latest"}).json()
        assert latest["report_id"] == result["report_id"]
        live = c.get("/api/v1/reports/pipeline", params={"kind": "echo", "recent": 2}).json()
        failed_report = c.get(
            "/api/v1/reports/pipeline", params={"kind": "echo", "state": "failed"}
        ).json()
        listed = c.get("/api/v1/reports").json()["items"]
        assert listed[0]["id"] == result["report_id"] and listed[0]["runs"] == 4

    expected = expected_stats(settings, kind="echo")
    assert {e.job_ids for e in expected.values()} == {tuple(sorted(ok))}
    for report in (stored_report, live):
        assert report["runs"] == 4 and report["message"] is None
        assert_report_matches(report, expected)
        (echo,) = report["kinds"]
        assert [s["stage"] for s in echo["stages"]] == ["step-1", "step-2", "step-3"]
        for s in echo["stages"]:
            # Each echo stage records one row in and one out.
            e = expected[("echo", s["stage"])]
            assert s["rows_out"] == 4 and s["rows_out_per_s"] == pytest.approx(4 / e.total)
            assert s["regression"]["status"] in ("ok", "regressed")
        totals = {j: sum(echo_s for echo_s in run["stages"].values()) for run in echo["recent_runs"]
                  for j in [run["job_id"]]}  # fmt: skip
        slowest = [r["job_id"] for r in report["slowest_runs"]]
        assert slowest == sorted(totals, key=lambda j: -totals[j])
        assert [r["job_id"] for r in echo["recent_runs"]] == sorted(ok)
    assert failed_report["runs"] == 1 and failed_report["slowest_runs"][0]["job_id"] == failed
    assert_report_matches(failed_report, expected_stats(settings, kind="echo", state="failed"))
    # The report's own job is a run of kind "report" too, once it has ended.
    everything = report_of(settings, state="any")
    assert {k["kind"] for k in everything["kinds"]} == {"echo", "report"}
    assert_report_matches(everything, expected_stats(settings, state="any"))


def check_latest_attempt_and_extra(settings: Settings) -> None:
    """Only the stages of each job's latest attempt count; numeric extras are summarised."""
    spark = {
        "input_rows": 1000,
        "shuffle_read_bytes": 4096,
        "executor": {"run_time_ms": 250.0, "tasks": 8},
        "engine": "spark",
        "aborted": False,
    }
    insert_runs(settings, "train", [{"load": 1.0, "fit": 5.0}] * 3, attempts=1, extra=spark)
    # Jobs retried once: their first attempt's (slower) stages stay in the table but not the report.
    retried = insert_runs(
        settings,
        "train",
        [{"load": 2.0, "fit": 6.0}] * 2,
        attempts=2,
        start=T0 + timedelta(hours=1),
    )
    with session_scope(settings.sqlalchemy_url) as s:
        from backend.db.tables import JobStage

        s.add_all(
            JobStage(job_id=j, attempt=1, name="fit", duration_s=99.0, extra={}) for j in retried
        )
    report = report_of(settings, kind="train")
    assert_report_matches(report, expected_stats(settings, kind="train"))
    (train,) = report["kinds"]
    fit = next(s for s in train["stages"] if s["stage"] == "fit")
    assert fit["max_s"] == 6.0 and fit["samples"] == 5
    assert fit["extra"]["input_rows"] == {
        "samples": 3, "sum": 3000.0, "mean": 1000.0, "min": 1000.0, "max": 1000.0,
    }  # fmt: skip
    assert fit["extra"]["executor.run_time_ms"]["sum"] == 750.0
    assert fit["extra"]["executor.tasks"]["mean"] == 8.0
    assert "engine" not in fit["extra"] and "aborted" not in fit["extra"]
    assert fit["share"] == pytest.approx(27.0 / (27.0 + 7.0))


def check_regression_flags(settings: Settings) -> None:
    """Crafted runs: fit doubles in the last 10 runs, load stays flat, score is too new."""
    runs = [{"load": 0.5, "fit": 1.0 + 0.01 * (i % 3)} for i in range(20)]
    runs += [{"load": 0.5, "fit": 2.0 + 0.01 * (i % 3), "score": 0.1} for i in range(10)]
    insert_runs(settings, "validate", runs, rows_out=100)
    report = report_of(settings, kind="validate", recent=10)
    stages = {s["stage"]: s for s in report["kinds"][0]["stages"]}
    fit = stages["fit"]["regression"]
    assert fit["flagged"] and fit["status"] == "regressed"
    assert fit["recent_median_s"] == pytest.approx(2.01) and fit["trailing_median_s"] == 1.01
    assert fit["ratio"] == pytest.approx(2.01 / 1.01)
    assert stages["load"]["regression"]["status"] == "ok"
    assert stages["score"]["regression"]["status"] == "not_enough_data"
    assert [(r["kind"], r["stage"]) for r in report["regressions"]] == [("validate", "fit")]
    assert stages["fit"]["trend"]["slope_s_per_run"] > 0
    assert stages["fit"]["trend"]["change"] == pytest.approx(2.01 / 1.0 - 1, abs=0.02)
    assert stages["load"]["rows_out_per_s"] == pytest.approx(100 / 0.5)
    # A higher threshold does not flag it; a shorter window over the flat part does not either.
    assert report_of(settings, kind="validate", recent=10, factor=2.5)["regressions"] == []
    early = report_of(settings, kind="validate", until=(T0 + timedelta(minutes=20)).isoformat())
    assert early["runs"] == 20 and early["regressions"] == []
    # Time range and last N select the same newest runs as the independent computation.
    since = T0 + timedelta(minutes=5)
    for filters in ({"last": 7}, {"since": since, "last": 12}, {"since": since}):
        got = report_of(settings, kind="validate", **filters)
        assert_report_matches(got, expected_stats(settings, kind="validate", **filters))


def check_snapshot_is_consistent(settings: Settings) -> None:
    """Inside a report's snapshot, rows committed by others meanwhile are not seen."""
    insert_runs(settings, "echo", [{"step-1": 0.1}] * 3)
    with session_scope(settings.sqlalchemy_url) as s, repository.snapshot(s):
        before = s.scalar(select(func.count()).select_from(Job))
        insert_runs(settings, "echo", [{"step-1": 0.1}] * 2, start=T0 + timedelta(hours=1))
        assert s.scalar(select(func.count()).select_from(Job)) == before
    assert report_of(settings, kind="echo")["runs"] == 5


def check_thousands_of_runs(settings: Settings, n: int = 5000) -> dict[str, float]:
    """n synthetic jobs x 4 stages in bulk; the report over all of them matches numpy."""
    rng = np.random.default_rng(7)
    names = ("load", "transform", "fit", "store")
    scales = (0.2, 1.0, 5.0, 0.1)
    runs = [
        {
            name: float(rng.gamma(4.0, scale / 4.0))
            for name, scale in zip(names, scales, strict=True)
        }
        for _ in range(n)
    ]
    t0 = time.perf_counter()
    insert_runs(settings, "train", runs, step=timedelta(seconds=30), rows_out=10_000)
    insert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = report_of(settings, kind="train", last=10_000)
    report_s = time.perf_counter() - t0
    from backend.reports.render import to_csv, to_html

    t0 = time.perf_counter()
    html = to_html(report)
    to_csv(report)
    render_s = time.perf_counter() - t0
    assert report["runs"] == n and report["stage_rows"] == 4 * n
    assert_report_matches(report, expected_stats(settings, kind="train", last=10_000))
    assert html.count('data-chart="') == 2
    return {"insert_s": insert_s, "report_s": report_s, "render_s": render_s}


def check_outliers_are_counted_and_listed(settings: Settings) -> None:
    """One run far outside Tukey's fences is the stage's only outlier, named by its job."""
    durations = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 5.0, 30.0]
    ids = insert_runs(settings, "validate", [{"fit": d} for d in durations])
    report = report_of(settings, kind="validate")
    [fit] = [s for s in report["kinds"][0]["stages"] if s["stage"] == "fit"]
    assert fit["outliers"]["count"] == 1
    assert fit["outliers"]["runs"] == [{"job_id": ids[-1], "duration_s": 30.0}]
