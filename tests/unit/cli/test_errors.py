"""The CLI's one error policy: one line on stderr, a documented exit code, --debug for the rest."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy.exc import OperationalError

import backend.abtest
from backend.cli.errors import CommandError, explain, one_line
from backend.config import Settings
from backend.errors import ConflictError, DataError, NotFoundError, UnavailableError
from tests.unit.cli.conftest import Recflow

# baseline_ctr above 1: plan_sample_size raises AbTestInputError, a DataError.
BAD_PLAN = ("abtest", "plan", "--baseline-ctr", "2", "--mde-rel", "0.1")


def test_a_data_error_is_one_line_and_exit_2(recflow: Recflow) -> None:
    res = recflow(*BAD_PLAN)
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert "baseline" in res.stderr and "Traceback" not in res.output


def test_debug_prints_the_traceback_before_the_line(recflow: Recflow) -> None:
    res = recflow("--debug", *BAD_PLAN)
    assert res.exit_code == 2
    assert res.stderr.startswith("Traceback (most recent call last):")
    assert "AbTestInputError" in res.stderr
    assert res.stderr.splitlines()[-1].startswith("error: ")


def test_an_unexpected_exception_is_an_internal_error_with_exit_1(
    recflow: Recflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug, not the user's input")

    monkeypatch.setattr(backend.abtest, "plan_sample_size", broken)
    res = recflow("abtest", "plan", "--baseline-ctr", "0.05", "--mde-rel", "0.1")
    assert res.exit_code == 1
    assert res.stderr == (
        "error: internal error (RuntimeError); run again with --debug for the traceback\n"
    )
    res = recflow("--debug", "abtest", "plan", "--baseline-ctr", "0.05", "--mde-rel", "0.1")
    assert res.exit_code == 1 and "RuntimeError: a bug, not the user's input" in res.stderr


def test_usage_errors_are_one_line_naming_the_help(recflow: Recflow) -> None:
    res = recflow("validate", "--no-such-flag")
    assert res.exit_code == 2
    assert res.stderr == ("error: No such option: --no-such-flag (see 'recflow validate --help')\n")
    res = recflow("abtest", "plan", "--baseline-ctr", "0.05")
    assert res.exit_code == 2
    assert res.stderr == "error: give exactly one of --mde-abs or --mde-rel\n"


def test_a_failed_job_run_here_ends_with_one_line_and_exit_1(
    recflow: Recflow, tmp_path: Path
) -> None:
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("user,item,rating\n" + "".join(f"u{i},i{i},3\n" for i in range(20)))
    # No timestamp column: the job fails when it reads the file (a DataError inside the job).
    res = recflow("validate", "-f", "csv", "--path", str(ratings), "--json")
    assert res.exit_code == 1
    assert res.stderr.startswith("error: validate job 1 failed: DataError: ")
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.output
    res = recflow("--debug", "validate", "-f", "csv", "--path", str(ratings), "--json")
    assert res.exit_code == 1 and "Traceback" in res.stderr


def test_a_missing_model_is_exit_3(recflow: Recflow) -> None:
    res = recflow("models", "activate", "42")
    assert res.exit_code == 3
    assert res.stderr.startswith("error: model 42 not found")


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (DataError("the ratings are empty"), 2),
        (NotFoundError("model 3 not found"), 3),
        (ConflictError("version v1 exists"), 4),
        (UnavailableError("no active model"), 5),
        (CommandError("job 1 failed"), 1),
        (CommandError("--k takes a number", 2), 2),
        (FileNotFoundError(2, "No such file or directory", "var/x.html"), 1),
    ],
)
def test_errors_a_user_can_act_on_keep_their_message(exc: Exception, code: int) -> None:
    explained = explain(exc)
    assert explained is not None
    message, exit_code = explained
    assert exit_code == code and message and "Traceback" not in message


def test_an_unreachable_database_is_unavailable() -> None:
    exc = OperationalError("SELECT 1", {}, sqlite3.OperationalError("unable to open database"))
    explained = explain(exc)
    assert explained is not None
    message, code = explained
    assert code == 5
    assert message.startswith("database ") and "unable to open database" in message


def test_invalid_settings_are_one_line_without_the_secret() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(env="production", api_keys=SecretStr("admin:short-secret-value"))
    explained = explain(caught.value)
    assert explained is not None
    message, code = explained
    assert code == 2 and message.startswith("settings: ")
    assert "short-secret-value" not in message and "\n" not in one_line(message)


def test_a_bug_is_not_explained() -> None:
    assert explain(KeyError("x")) is None
    assert explain(ValueError("a plain ValueError is not a DataError")) is None


def test_one_line_joins_lines() -> None:
    assert one_line("first\n  second\n\n") == "first; second"


def test_a_group_without_a_command_shows_its_help(recflow: Recflow) -> None:
    res = recflow("abtest")
    assert res.exit_code == 2
    assert res.stdout.startswith("Usage: recflow abtest [OPTIONS] COMMAND")
    assert "analyze" in res.stdout and res.stderr == ""


def test_ctrl_c_exits_130(recflow: Recflow, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(backend.abtest, "plan_sample_size", interrupted)
    res = recflow("abtest", "plan", "--baseline-ctr", "0.05", "--mde-rel", "0.1")
    assert res.exit_code == 130 and "Traceback" not in res.output
