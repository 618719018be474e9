"""The ``recflow`` command run in-process, on a fresh data directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from backend.cli.app import app
from backend.config import get_settings

Recflow = Callable[..., Result]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """RECFLOW_DATA_DIR for the commands a test runs."""
    monkeypatch.setenv("RECFLOW_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield tmp_path / "var"
    get_settings.cache_clear()


@pytest.fixture
def recflow(data_dir: Path) -> Recflow:
    """``recflow ARGS...`` through the whole command tree and its error policy."""

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), prog_name="recflow")

    return run
