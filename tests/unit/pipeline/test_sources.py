from __future__ import annotations

import time
from pathlib import Path

import pytest

from backend.pipeline.sources import DirSource, KafkaSource, SourceUnavailableError, check_source


def test_unreachable_broker_fails_within_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(SourceUnavailableError, match=r"127\.0\.0\.1:1 .*scripts/kafka\.sh start"):
        check_source(KafkaSource("127.0.0.1:1", "interactions", timeout_s=2))
    assert time.monotonic() - started < 20


def test_missing_landing_directory_is_created(tmp_path: Path) -> None:
    check_source(DirSource(tmp_path / "landing"))
    assert (tmp_path / "landing").is_dir()


def test_source_keys_name_distinct_checkpoints(tmp_path: Path) -> None:
    assert KafkaSource("h:1", "interactions").key == "kafka-interactions"
    assert KafkaSource("h:1", "a/b").key == "kafka-a_b"
    one, two = DirSource(tmp_path / "x" / "landing"), DirSource(tmp_path / "y" / "landing")
    assert one.key != two.key and one.key.startswith("files-landing-")
