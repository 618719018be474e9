"""Shared fixtures. MovieLens is read from ../shared/data and never copied into the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend import catalog
from backend.config import Settings
from backend.db.migrate import upgrade

REPO = Path(__file__).resolve().parents[1]
ML100K = (REPO.parent / "shared" / "data" / "ml-100k").resolve()

# The real services' addresses (from `scripts/services.sh env`) are taken out of the environment
# here, so that every test chooses its stack explicitly: Settings() in a test is always the
# embedded one unless the test asks for a service.
SERVICES: dict[str, str] = {
    k: os.environ.pop(k)
    for k in list(os.environ)
    if k.startswith("RECFLOW_") and k not in ("RECFLOW_REQUIRE_SERVICES",)
}
REQUIRE_SERVICES = bool(os.environ.get("RECFLOW_REQUIRE_SERVICES"))

# The job kinds, as every entry point installs them (tests call the platform directly).
catalog.install()


def service_env(name: str) -> str:
    """The address of a real service, or a skip (a failure under `make test`) when absent."""
    value = SERVICES.get(name)
    if not value:
        message = f"{name} is not set: start the services with `make services-up`"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    return value


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """The ml-100k folder from ../shared/data, or a clean skip where it is absent."""
    if not (ML100K / "u.data").is_file():
        pytest.skip(f"MovieLens 100K not found at {ML100K}")
    return ML100K


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded settings in a fresh data directory, with the schema migrated."""
    s = Settings(data_dir=tmp_path / "var")
    s.ensure_dirs()
    upgrade(s.sqlalchemy_url)
    return s
