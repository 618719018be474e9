"""Settings that shape the event contract's limits, and no setting that nothing reads."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.config import Settings
from backend.streaming.events import DEFAULT_RULES, Rejected, encode_event
from backend.streaming.validation import validate_event


def test_default_event_rules_are_the_contracts() -> None:
    assert Settings().event_rules() == DEFAULT_RULES


def test_event_rules_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECFLOW_EVENT_RATING_MIN", "0.5")
    monkeypatch.setenv("RECFLOW_EVENT_RATING_MAX", "10")
    monkeypatch.setenv("RECFLOW_EVENT_MAX_BYTES", "2048")
    monkeypatch.setenv("RECFLOW_EVENT_MAX_FUTURE_SKEW_S", "60")
    monkeypatch.setenv("RECFLOW_EVENT_MAX_AGE_DAYS", "30")
    rules = Settings().event_rules()
    assert rules.scale == (0.5, 10.0)
    assert (rules.max_bytes, rules.max_future_skew) == (2048, timedelta(seconds=60))
    assert rules.max_age == timedelta(days=30)
    # A half-star rating is valid on the configured scale and out of the default one.
    half = {
        "schema_version": 1,
        "event_id": "e1",
        "user": "u1",
        "item": "i1",
        "type": "rating",
        "rating": 0.5,
        "ts": 1_700_000_000_000,
    }
    now = 1_700_000_000_000
    assert not isinstance(validate_event(encode_event(half), now=now, rules=rules), Rejected)
    rejected = validate_event(encode_event(half), now=now, rules=DEFAULT_RULES)
    assert isinstance(rejected, Rejected) and rejected.reason == "rating_out_of_scale"


def test_an_inverted_rating_scale_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECFLOW_EVENT_RATING_MIN", "5")
    monkeypatch.setenv("RECFLOW_EVENT_RATING_MAX", "1")
    with pytest.raises(ValidationError, match="RECFLOW_EVENT_RATING_MIN must be below"):
        Settings()


def test_spark_settings_reach_the_session_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.pipeline.job import spark_options

    defaults = spark_options(Settings())
    assert (defaults.state_store, defaults.gc) == ("rocksdb", "parallel")
    monkeypatch.setenv("RECFLOW_SPARK_STATE_STORE", "hdfs")
    monkeypatch.setenv("RECFLOW_SPARK_GC", "g1")
    chosen = spark_options(Settings())
    assert (chosen.state_store, chosen.gc) == ("hdfs", "g1")
    monkeypatch.setenv("RECFLOW_SPARK_STATE_STORE", "memory")
    with pytest.raises(ValidationError, match="spark_state_store"):
        Settings()


REPO = Path(__file__).resolve().parents[2]
READERS = ("backend", "workers", "bench", "scripts")


def test_every_setting_is_read_somewhere() -> None:
    """A field of Settings that no code reads is a knob that does nothing: remove it instead."""
    config = (REPO / "backend" / "config.py").read_text()
    code = "\n".join(
        path.read_text()
        for folder in READERS
        for path in sorted((REPO / folder).rglob("*.py"))
        if path != REPO / "backend" / "config.py"
    )
    unread = [
        name
        for name in Settings.model_fields
        if not re.search(rf"\bself\.{name}\b", config)  # read by a property or validator
        and not re.search(rf"\b{name}\b", code)
    ]
    assert not unread, f"settings that nothing reads: {unread}"
