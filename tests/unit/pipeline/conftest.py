"""Fixtures shared by the pipeline tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backend.pipeline.spark import SparkOptions, build_spark


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local[2] Spark session for one test module (with the JVM event parser compiled)."""
    session = build_spark(
        SparkOptions(master="local[2]", var_dir=tmp_path_factory.mktemp("spark-var"))
    )
    yield session
    session.stop()
