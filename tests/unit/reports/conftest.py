from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import Settings
from backend.db.migrate import upgrade


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(data_dir=tmp_path / "var")
    s.ensure_dirs()
    upgrade(s.sqlalchemy_url)
    return s
