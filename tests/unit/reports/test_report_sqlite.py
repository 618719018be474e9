"""The report job, its SQL and its API on SQLite (the embedded stack), jobs run in-process."""

from __future__ import annotations

import json

import pytest

from backend.config import Settings
from tests.unit.reports import cases


def test_real_jobs_match_the_stored_stage_rows(settings: Settings) -> None:
    cases.check_real_jobs_match_stored_rows(settings)


def test_only_the_latest_attempt_counts_and_extras_are_summarised(settings: Settings) -> None:
    cases.check_latest_attempt_and_extra(settings)


def test_regression_flags_on_crafted_rows(settings: Settings) -> None:
    cases.check_regression_flags(settings)


def test_a_report_reads_one_snapshot(settings: Settings) -> None:
    cases.check_snapshot_is_consistent(settings)


@pytest.mark.slow
def test_thousands_of_runs(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    timing = cases.check_thousands_of_runs(settings)
    with capsys.disabled():
        print("\nreport over 5000 runs x 4 stages (sqlite):", json.dumps(timing))


def test_outliers_are_counted_and_listed(settings: Settings) -> None:
    cases.check_outliers_are_counted_and_listed(settings)
