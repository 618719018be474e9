"""A job's public error names no server path."""

from __future__ import annotations

from pathlib import Path

from backend.config import Settings
from backend.jobs.redact import public_error, redact_paths, roots_of

ROOTS = [Path("/srv/recflow/var/uploads"), Path("/srv/recflow/var"), Path("/data/movielens")]


def test_paths_under_a_root_become_relative_to_it() -> None:
    text = "cannot read /srv/recflow/var/uploads/a.csv or /data/movielens/ml-100k/u.data."
    assert redact_paths(text, ROOTS) == "cannot read a.csv or ml-100k/u.data."
    assert redact_paths("in '/srv/recflow/var'", ROOTS) == "in '.'"


def test_any_other_absolute_path_keeps_only_its_name() -> None:
    text = "No such file: '/etc/passwd' (/proc/self/environ, /home/x/.ssh/id_rsa)"
    assert redact_paths(text, ROOTS) == "No such file: '…/passwd' (…/environ, …/id_rsa)"


def test_urls_relative_paths_and_ratios_are_left_alone() -> None:
    text = "GET http://host:8000/api/v1/jobs failed; see data/ratings.csv; 3/4 folds; a/b"
    assert redact_paths(text, ROOTS) == text


def test_public_error_is_one_line_without_traceback(settings: Settings) -> None:
    inside = settings.data_dir.resolve() / "models" / "v1"
    exc = RuntimeError(f"artifact {inside} is corrupt")
    assert public_error(exc, settings) == "RuntimeError: artifact models/v1 is corrupt"
    assert public_error(ValueError(), settings) == "ValueError"
    assert len(public_error(RuntimeError("x" * 10_000), settings)) == 2000


def test_roots_include_the_configured_data_roots(settings: Settings, tmp_path: Path) -> None:
    extra = tmp_path / "shared"
    extra.mkdir()
    with_roots = settings.model_copy(update={"data_roots": [extra]})
    assert extra.resolve() in roots_of(with_roots)
    assert settings.data_dir.resolve() in roots_of(with_roots)
