"""Jobs run in the command's own process (``recflow train``, ``validate`` ...)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from backend.cli.inline import run_inline
from backend.config import Settings, get_settings
from backend.jobs import echo, supervisor
from backend.jobs.queue import make_celery
from tests.unit.jobs.conftest import full_row, queued_messages


def test_a_job_interrupted_with_ctrl_c_ends_cancelled_and_is_never_taken_over(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECFLOW_DATA_DIR", str(settings.data_dir))

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt  # the user's Ctrl-C, while the job sleeps

    monkeypatch.setattr(echo, "time", SimpleNamespace(monotonic=time.monotonic, sleep=interrupted))
    get_settings.cache_clear()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_inline("echo", {"sleep_s": 5}, quiet=True)
    finally:
        get_settings.cache_clear()
    job = full_row(settings, 1)
    assert job.state == "cancelled" and job.finished_at is not None
    assert "interrupted" in (job.message or "")
    # Long after, a supervisor finds nothing to take over and nothing to send.
    later = settings.model_copy(update={"job_heartbeat_timeout_s": 0.01, "job_dispatch_grace_s": 0})
    report = supervisor.run_once(later, make_celery(later))
    assert not report and queued_messages(settings) == []
    assert full_row(settings, 1).state == "cancelled"


def test_a_command_reads_the_files_its_user_names(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outside every configured root: refused over the API, read by the user's own command.
    outside = tmp_path / "elsewhere" / "ratings.csv"
    outside.parent.mkdir()
    rows = [f"u{u},i{i},{1 + (u * i) % 5}" for u in range(12) for i in range(10)]
    outside.write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    monkeypatch.setenv("RECFLOW_DATA_DIR", str(settings.data_dir))
    params = {"data": {"format": "csv", "path": str(outside), "timestamp_col": None}, "k": 2}
    get_settings.cache_clear()
    try:
        job = run_inline("validate", params, quiet=True)
    finally:
        get_settings.cache_clear()
    assert job["state"] == "succeeded", job["error"]
