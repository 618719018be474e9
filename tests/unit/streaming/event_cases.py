"""Raw records and the reason contract v1 gives each, shared by the Python and Spark tests."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from backend.streaming.events import FIELD_NAMES, ValidationRules

DAY_MS = 86_400_000
RULES = ValidationRules(max_bytes=1024, scale=(1.0, 5.0), max_age=timedelta(days=30))


def record(now_ms: int, **changes: Any) -> str:
    """A valid click event as JSON, with fields changed (``...`` removes a field)."""
    event: dict[str, Any] = {
        "schema_version": 1,
        "event_id": "e-1",
        "user": "u1",
        "item": "i1",
        "type": "click",
        "ts": now_ms,
    }
    for key, value in changes.items():
        if value is ...:
            event.pop(key, None)
        else:
            event[key] = value
    # Contract order (as encode_event writes), so that Spark's fast path sees these records too.
    order = {name: i for i, name in enumerate(FIELD_NAMES)}
    return json.dumps(dict(sorted(event.items(), key=lambda kv: order.get(kv[0], len(order)))))


def cases(now_ms: int) -> list[tuple[str, str | None, str | None]]:
    """``(raw, reason, field)`` triples covering every reason and the valid edge cases."""
    r = record
    n = now_ms
    out = [
        (r(n), None, None),
        (r(n, type="rating", rating=4.5), None, None),
        (r(n, type="rating", rating=1), None, None),
        (r(n, rating=None), None, None),
        (r(n, experiment="home", variant="B"), None, None),
        (r(n, recommendation_id="rec_1-a", model_version="als-v3.1_b"), None, None),
        (r(n, recommendation_id="r" * 64, model_version="9" + "." * 63), None, None),
        (r(n, recommendation_id=None, model_version=None), None, None),
        (r(n, source="sim", sent_at=n, extra={"nested": [1, 2]}), None, None),
        (r(n, event_id="é" * 128), None, None),
        ("  " + r(n), None, None),
        (r(n, ts=n - 29 * DAY_MS), None, None),
        ("x" * 2000, "oversized", None),
        (r(n, padding="y" * 1024), "oversized", None),
        ("not json", "not_json", None),
        ("", "not_json", None),
        ("[1, 2]", "not_json", None),
        ('"a string"', "not_json", None),
        ('{"user": "a", "user": "b"}', "not_json", None),
        ('{"rating": NaN}', "not_json", None),
        (r(n)[:-3], "not_json", None),
        (r(n) + " trailing", "not_json", None),
        (r(n) + "{}", "not_json", None),
        (r(n) + "]", "not_json", None),
        (r(n, extra=[[[[1]]]]), None, None),
        (r(n)[:-1] + ', "deep": ' + "[" * 64 + "]" * 64 + "}", "not_json", None),
        (r(n)[:-1] + ', "deep": "' + "[" * 70 + '"}', None, None),
        (r(n, user=...), "missing_field", "user"),
        (r(n, ts=None), "missing_field", "ts"),
        (r(n, schema_version=...), "missing_field", "schema_version"),
        (r(n, type="rating"), "missing_field", "rating"),
        (r(n, experiment="home"), "missing_field", "variant"),
        (r(n, variant="A"), "missing_field", "experiment"),
        (r(n, user=123), "wrong_type", "user"),
        (r(n, ts=str(n)), "wrong_type", "ts"),
        (r(n, ts=float(n)), "wrong_type", "ts"),
        (r(n, ts=2**70), "wrong_type", "ts"),
        (r(n, schema_version="1"), "wrong_type", "schema_version"),
        (r(n, type="rating", rating="4"), "wrong_type", "rating"),
        (r(n, type="rating", rating=True), "wrong_type", "rating"),
        (r(n, sent_at="yesterday"), "wrong_type", "sent_at"),
        (r(n, schema_version=2), "unsupported_version", "schema_version"),
        (r(n, type="hover"), "unknown_type", "type"),
        (r(n, event_id=""), "bad_id", "event_id"),
        (r(n, event_id="x" * 129), "bad_id", "event_id"),
        (r(n, user="has space"), "bad_id", "user"),
        (r(n, item="x" * 65), "bad_id", "item"),
        (r(n, user="trailing\n"), "bad_id", "user"),
        (r(n, experiment="a/b", variant="A"), "bad_id", "experiment"),
        (r(n, recommendation_id=""), "bad_id", "recommendation_id"),
        (r(n, recommendation_id="r.1"), "bad_id", "recommendation_id"),
        (r(n, recommendation_id="r" * 65), "bad_id", "recommendation_id"),
        (r(n, model_version=""), "bad_id", "model_version"),
        (r(n, model_version=".v1"), "bad_id", "model_version"),
        (r(n, model_version="_v1"), "bad_id", "model_version"),
        (r(n, model_version="v" * 65), "bad_id", "model_version"),
        (r(n, model_version="v 1"), "bad_id", "model_version"),
        (r(n, model_version=3), "wrong_type", "model_version"),
        (r(n, recommendation_id=["r"]), "wrong_type", "recommendation_id"),
        (r(n, recommendation_id="r/1", model_version=".v"), "bad_id", "recommendation_id"),
        (r(n, rating=3), "rating_not_allowed", "rating"),
        (r(n, sent_at=10**16), "ts_too_far_future", "sent_at"),
        (r(n, sent_at=-(10**16)), "ts_too_far_past", "sent_at"),
        (r(n, sent_at=-n), None, None),
        (r(n, schema_version=2**40), "unsupported_version", "schema_version"),
        (r(n, type="rating", rating=5.5), "rating_out_of_scale", "rating"),
        (r(n, type="rating", rating=0), "rating_out_of_scale", "rating"),
        (r(n, ts=n + DAY_MS), "ts_too_far_future", "ts"),
        (r(n, ts=n - 31 * DAY_MS), "ts_too_far_past", "ts"),
        (r(n, ts=-1), "ts_too_far_past", "ts"),
    ]
    # A distinct event id per record, so that no valid case is dropped as a duplicate of another.
    return [
        (raw.replace('"event_id": "e-1"', f'"event_id": "case-{i}"'), reason, field)
        for i, (raw, reason, field) in enumerate(out)
    ]
