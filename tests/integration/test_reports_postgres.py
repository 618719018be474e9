"""The report's SQL on PostgreSQL (percentile_cont, stddev_samp, REPEATABLE READ snapshot).

Runs the same checks as the SQLite unit tests, in a database of its own on the local server
(``recflow_reports_test`` next to RECFLOW_TEST_DATABASE_URL's), reset for every test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from backend.config import Settings
from backend.db.migrate import reset
from tests.conftest import service_env
from tests.unit.reports import cases

pytestmark = pytest.mark.integration

DB_NAME = "recflow_reports_test"


@pytest.fixture(scope="module")
def pg_url() -> str:
    base = make_url(service_env("RECFLOW_TEST_DATABASE_URL"))
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return base.set(database=DB_NAME).render_as_string(hide_password=False)


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Iterator[Settings]:
    s = Settings(data_dir=tmp_path / "var", database_url=pg_url)
    s.ensure_dirs()
    reset(s.sqlalchemy_url)
    yield s


def test_real_jobs_match_the_stored_stage_rows(settings: Settings) -> None:
    cases.check_real_jobs_match_stored_rows(settings)


def test_only_the_latest_attempt_counts_and_extras_are_summarised(settings: Settings) -> None:
    cases.check_latest_attempt_and_extra(settings)


def test_regression_flags_on_crafted_rows(settings: Settings) -> None:
    cases.check_regression_flags(settings)


def test_a_report_reads_one_snapshot(settings: Settings) -> None:
    cases.check_snapshot_is_consistent(settings)


def test_percentiles_come_from_postgresql(settings: Settings) -> None:
    cases.insert_runs(settings, "echo", [{"step-1": float(i)} for i in range(1, 12)])
    report = cases.report_of(settings, kind="echo")
    assert report["database"] == "postgresql" and report["percentiles_computed_in"] == "postgresql"
    # percentile_cont over 1..11: h = 10 * 0.95 = 9.5 -> 10.5
    assert report["kinds"][0]["stages"][0]["p95_s"] == pytest.approx(10.5)


@pytest.mark.slow
def test_thousands_of_runs(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    timing = cases.check_thousands_of_runs(settings)
    with capsys.disabled():
        print("\nreport over 5000 runs x 4 stages (postgresql):", json.dumps(timing))
