"""One started stack per kind for the whole session: starting uvicorn and Celery costs seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backend.cli.stack import Stack
from backend.config import Settings
from tests.integration.stacks import started


@pytest.fixture(scope="session", params=["embedded", "services"])
def stack_and_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Settings]]:
    with started(request.param, tmp_path_factory.mktemp(request.param), api_workers=2) as pair:
        yield pair


@pytest.fixture
def stack(stack_and_settings: tuple[Stack, Settings]) -> Stack:
    return stack_and_settings[0]
