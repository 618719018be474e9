"""Pipeline reports on the real stacks: echo jobs and the report job run by a Celery worker,
the report read from the uvicorn API as JSON, CSV and an HTML page drawn by headless Chromium.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.cli.stack import Stack
from backend.config import Settings
from tests.integration.test_job_platform import poll, submit
from tests.unit.reports.support import (
    assert_report_matches,
    browse,
    chromium,
    coloured_pixels,
    expected_stats,
)

pytestmark = pytest.mark.integration


def _get(st: Stack, path: str, **kwargs: Any) -> httpx.Response:
    headers = {**st.headers, **kwargs.pop("headers", {})}
    return httpx.get(f"{st.api_url}/api/v1/reports{path}", timeout=30, headers=headers, **kwargs)


def test_report_of_worker_jobs_matches_the_stored_rows(
    stack_and_settings: tuple[Stack, Settings], tmp_path: Path
) -> None:
    st, settings = stack_and_settings
    since = datetime.now(UTC)
    jobs = [submit(st, {"sleep_s": s, "stages": 3}) for s in (0.06, 0.12, 0.09, 0.15)]
    jobs.append(submit(st, {"sleep_s": 0.04, "stages": 2, "fail": True}))
    states = [poll(st, j["id"], ("succeeded", "failed"))["state"] for j in jobs]
    assert states == ["succeeded"] * 4 + ["failed"]

    filters = {"kind": "echo", "since": since.isoformat()}
    r = httpx.post(
        f"{st.api_url}/api/v1/reports/pipeline", json=filters, headers=st.headers, timeout=30
    )
    assert r.status_code == 202, r.text
    done = poll(st, r.json()["id"], ("succeeded", "failed"))
    assert done["state"] == "succeeded", done
    report_id = done["result"]["report_id"]
    stored = _get(st, "/pipeline", params={"report_id": report_id}).json()
    live = _get(st, "/pipeline", params=filters).json()
    expected = expected_stats(settings, kind="echo", since=since)
    assert {e.job_ids for e in expected.values()} == {tuple(j["id"] for j in jobs[:4])}
    for report in (stored, live):
        assert report["runs"] == 4
        assert_report_matches(report, expected)

    failed = _get(st, "/pipeline", params={**filters, "state": "failed"}).json()
    assert failed["runs"] == 1 and failed["slowest_runs"][0]["job_id"] == jobs[4]["id"]
    assert_report_matches(
        failed, expected_stats(settings, kind="echo", since=since, state="failed")
    )

    table = _get(st, "/pipeline", params=filters, headers={"Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [x["stage"] for x in rows] == ["step-1", "step-2", "step-3"]
    assert {x["median_s"] for x in rows} == {
        repr(s["median_s"]) for s in live["kinds"][0]["stages"]
    }

    bad = _get(
        st, "/pipeline", params={"kind": "echo", "since": "2026-02-01", "until": "2026-01-01"}
    )
    assert bad.status_code == 422 and "must be before until" in bad.json()["error"]
    empty = _get(st, "/pipeline.html", params={"kind": "echo", "since": "2100-01-01"})
    assert empty.status_code == 200 and "no runs match" in empty.text


def test_html_page_renders_its_charts_in_chromium(
    stack_and_settings: tuple[Stack, Settings], tmp_path: Path
) -> None:
    chromium()
    st, _ = stack_and_settings
    since = datetime.now(UTC)
    jobs = [submit(st, {"sleep_s": 0.05 * (1 + i % 3), "stages": 3}) for i in range(6)]
    for j in jobs:
        assert poll(st, j["id"], ("succeeded", "failed"))["state"] == "succeeded"
    # The page is fetched with the stack's key (a browser cannot send one from the command
    # line) and rendered from a file: it is self-contained, inline SVG and CSS.
    r = _get(st, "/pipeline.html", params={"kind": "echo", "since": since.isoformat()})
    assert r.status_code == 200, r.text
    page = tmp_path / "pipeline.html"
    page.write_text(r.text, encoding="utf-8")
    png, dom = browse(page.as_uri(), tmp_path)
    assert dom.count('data-chart="stacked"') == 1 and dom.count('data-chart="box"') == 1
    assert dom.count('class="seg"') == 18 and dom.count('class="box"') == 3
    assert coloured_pixels(png) > 10_000
