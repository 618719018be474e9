"""``recflow jobs reap``: one supervisor pass from the command line, on the embedded stack."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from backend.cli.jobs import app
from backend.config import Settings, get_settings
from tests.unit.jobs.conftest import ago, new_job, queued_messages, row


def test_reap_requeues_a_dead_job_and_sends_a_lost_one(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECFLOW_DATA_DIR", str(settings.data_dir))
    stale = ago(settings.job_heartbeat_timeout_s + 5)
    dead = new_job(settings, state="running", attempts=1, heartbeat_at=stale, created_at=stale)
    lost = new_job(settings, created_at=ago(60))
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(app, ["reap", "--json"])
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["requeued"] == [dead] and sorted(report["sent"]) == sorted([dead, lost])
    assert row(settings, dead).state == "queued" and row(settings, dead).dispatches == 1
    assert sorted(queued_messages(settings)) == sorted([dead, lost])
