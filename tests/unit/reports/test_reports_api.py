"""The reports API on SQLite: bad input, empty selections, CSV and HTML content, the CLI."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from backend.config import Settings, get_settings
from tests.unit.reports.support import app_with_reports, insert_runs

PIPELINE = "/api/v1/reports/pipeline"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(app_with_reports(settings)) as c:
        yield c


@pytest.fixture
def crafted(settings: Settings) -> Settings:
    runs = [{"load": 0.5, "fit": 1.0 + 0.01 * i} for i in range(20)]
    runs += [{"load": 0.5, "fit": 3.0} for _ in range(10)]
    insert_runs(settings, "train", runs, rows_out=50, extra={"input_rows": 50})
    return settings


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"kind": "nope"}, "unknown job kind 'nope'; known kinds: "),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "must be before until"),
        ({"since": "yesterday"}, "since: must be an ISO 8601 date or datetime"),
        ({"until": "2026-13-45"}, "until: must be an ISO 8601"),
        ({"last": 0}, "last: Input should be greater than or equal to 1"),
        ({"last": 10**12}, "last: Input should be less than or equal to 10000"),
        ({"last": "many"}, "last"),
        ({"state": "done"}, "state: Input should be 'succeeded', 'failed', 'cancelled' or 'any'"),
        ({"factor": 0.5}, "factor: Input should be greater than 1"),
        ({"report_id": "abc"}, "report_id must be a number or 'latest'"),
        ({"report_id": "1", "kind": "echo"}, "give report_id or filters, not both"),
    ],
)
def test_bad_input_is_a_clear_4xx(client: TestClient, params: dict, needle: str) -> None:
    r = client.get(PIPELINE, params=params)
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]
    page = client.get(f"{PIPELINE}.html", params=params)
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert 'id="error"' in page.text and "Traceback" not in page.text


def test_unknown_and_missing_stored_reports_are_404(client: TestClient) -> None:
    r = client.get(PIPELINE, params={"report_id": "999"})
    assert r.status_code == 404 and "report 999 not found" in r.json()["error"]
    r = client.get(PIPELINE, params={"report_id": "latest"})
    assert r.status_code == 404 and "no stored report yet" in r.json()["error"]


def test_bad_params_for_the_job_are_422(client: TestClient) -> None:
    r = client.post(PIPELINE, json={"last": 20000})
    assert r.status_code == 422 and "last" in r.json()["error"]
    r = client.post("/api/v1/jobs", json={"kind": "report", "params": {"until": "x", "bogus": 1}})
    assert r.status_code == 422
    assert "params.until" in r.json()["error"] and "params.bogus" in r.json()["error"]


def test_empty_selection_is_a_200_with_a_message(client: TestClient) -> None:
    r = client.get(PIPELINE, params={"kind": "echo", "since": "2030-01-01"})
    assert r.status_code == 200
    body = r.json()
    assert body["runs"] == 0 and body["kinds"] == [] and body["regressions"] == []
    assert body["message"].startswith("no runs match (kind=echo, state=succeeded")
    r = client.get(PIPELINE, params={"kind": "echo"}, headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.text.count("\n") == 1 and r.text.startswith("kind,stage,")
    page = client.get(f"{PIPELINE}.html", params={"kind": "echo"})
    assert page.status_code == 200 and 'id="message"' in page.text
    assert "no runs match" in page.text and "<svg" not in page.text


def test_csv_matches_the_json(client: TestClient, crafted: Settings) -> None:
    report = client.get(PIPELINE, params={"kind": "train"}).json()
    r = client.get(PIPELINE, params={"kind": "train"}, headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["kind"], x["stage"]) for x in rows] == [("train", "load"), ("train", "fit")]
    stages = {s["stage"]: s for s in report["kinds"][0]["stages"]}
    for row in rows:
        s = stages[row["stage"]]
        for col in ("mean_s", "median_s", "p95_s", "min_s", "max_s", "std_s", "share"):
            assert float(row[col]) == s[col], col
        assert int(row["samples"]) == s["samples"] == 30
        assert row["regression_status"] == s["regression"]["status"]
    assert rows[1]["regression_status"] == "regressed"


def test_html_has_tables_charts_and_flags(client: TestClient, crafted: Settings) -> None:
    page = client.get(f"{PIPELINE}.html", params={"kind": "train"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert html.count('data-chart="stacked"') == 1 and html.count('data-chart="box"') == 1
    # 30 runs x 2 stages in the stacked bars, one box per stage.
    assert html.count('class="seg"') == 60 and html.count('class="box"') == 2
    assert 'id="regressions"' in html and "train / fit" in html
    assert 'class="regressed"' in html and "input_rows" in html and 'id="slowest"' in html


def test_stored_report_round_trips(client: TestClient, crafted: Settings) -> None:
    from backend.jobs import runner

    r = client.post(PIPELINE, json={"kind": "train", "factor": 2})
    assert runner.execute(crafted, r.json()["id"]) == "succeeded"
    report_id = client.get(r.headers["Location"]).json()["result"]["report_id"]
    stored = client.get(PIPELINE, params={"report_id": report_id}).json()
    assert stored["filters"]["factor"] == 2 and stored["regressions"][0]["stage"] == "fit"
    page = client.get(f"{PIPELINE}.html", params={"report_id": "latest"})
    assert page.status_code == 200 and f"Pipeline performance report #{report_id}" in page.text


def test_cli_prints_and_writes(
    crafted: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.cli.report import app

    monkeypatch.setenv("RECFLOW_DATA_DIR", str(crafted.data_dir))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        out_csv, out_html = tmp_path / "r.csv", tmp_path / "r.html"
        res = runner.invoke(
            app, ["pipeline", "--kind", "train", "--csv", str(out_csv), "--html", str(out_html)]
        )
        assert res.exit_code == 0, res.output
        assert "train: 30 runs" in res.output and "regression train/fit" in res.output
        assert out_csv.read_text().startswith("kind,stage,") and "<svg" in out_html.read_text()
        res = runner.invoke(app, ["pipeline", "--kind", "train", "--last", "5", "--json"])
        assert res.exit_code == 0, res.output
        body = json.loads(res.stdout)
        assert body["runs"] == 5 and body["report_id"] >= 1
        res = runner.invoke(app, ["pipeline", "--last", "0"])
        assert res.exit_code == 2 and "last" in res.output
    finally:
        get_settings.cache_clear()
