"""The Python validator of the event contract: ``validate_event(raw)`` -> ``Event`` or ``Rejected``.

The checks, their order and their reason codes are the contract's (``backend.streaming.events``,
module docstring); the Spark ingestion applies the same ones as SQL expressions
(``backend.pipeline.validation``), and tests hold the two to the same answers. Pure: no web,
database, queue or Spark code.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from backend.streaming.events import (
    DEFAULT_RULES,
    EPOCH_MS_LIMIT,
    EVENT_TYPES,
    FIELDS,
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    SCHEMA_VERSION,
    Event,
    FieldKind,
    Reason,
    Rejected,
    ValidationRules,
    now_ms,
)


class _NotJson(ValueError):
    pass


def _nested_deeper_than(data: bytes, limit: int) -> bool:
    """Whether ``[``/``{`` outside strings nest more than ``limit`` deep (counted only when the
    record has that many brackets at all, which events never do)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _NotJson(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise _NotJson(f"{name} is not valid JSON")


def _kind_matches(kind: FieldKind, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) and INT64_MIN <= value <= INT64_MAX
    return isinstance(value, int | float)


#: The id rule of each id-like field, compiled once (``FieldSpec.id_regex``).
_ID_RULES = {s.name: re.compile(s.id_regex()) for s in FIELDS if s.id_like}


def ts_rejection(ts: int, now_ms: int, rules: ValidationRules) -> tuple[Reason, str] | None:
    """The reason and message when event time ``ts`` is too far from ``now_ms``; None when it
    is within the rules (one rule for the validator and its fast path)."""
    skew = rules.max_future_skew_ms
    if ts > now_ms + skew:
        ahead = ts - now_ms
        return "ts_too_far_future", f"ts is {ahead} ms ahead of now (at most {skew} ms allowed)"
    max_age = rules.max_age_ms
    if ts < 0 or (max_age is not None and ts < now_ms - max_age):
        return "ts_too_far_past", "ts must be epoch milliseconds >= 0" + (
            "" if max_age is None else f" and at most {max_age} ms before now"
        )
    return None


def validate_event(
    raw: bytes | str,
    *,
    now: datetime | int | None = None,
    rules: ValidationRules = DEFAULT_RULES,
) -> Event | Rejected:
    """Check one raw record against contract v1 and return the ``Event`` or why it is rejected.

    ``now`` is the validator's clock (an aware datetime, or epoch milliseconds; default: the
    current time); the time-window checks compare ``ts`` with it. The checks and their order are
    listed in the module docstring; the first failing check gives the reason.
    """
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(data) > rules.max_bytes:
        return Rejected("oversized", None, f"record is {len(data)} bytes > {rules.max_bytes}", data)
    if _nested_deeper_than(data, MAX_DEPTH):
        return Rejected("not_json", None, f"JSON nested deeper than {MAX_DEPTH} levels", data)
    try:
        obj = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return Rejected("not_json", None, f"not valid JSON: {exc}", data)
    if not isinstance(obj, dict):
        return Rejected("not_json", None, "an event must be a JSON object", data)

    def present(name: str) -> bool:
        return obj.get(name) is not None

    for spec in FIELDS:
        if spec.required and not present(spec.name):
            return Rejected("missing_field", spec.name, f"{spec.name} is required", data)
    for spec in FIELDS:
        if present(spec.name) and not _kind_matches(spec.kind, obj[spec.name]):
            want = {"string": "a string", "integer": "a 64-bit integer", "number": "a number"}
            return Rejected("wrong_type", spec.name, f"{spec.name} must be {want[spec.kind]}", data)
    if obj["schema_version"] != SCHEMA_VERSION:
        return Rejected(
            "unsupported_version",
            "schema_version",
            f"schema_version {obj['schema_version']} is not supported (expected {SCHEMA_VERSION})",
            data,
        )
    if obj["type"] not in EVENT_TYPES:
        return Rejected(
            "unknown_type", "type", f"type must be one of {', '.join(EVENT_TYPES)}", data
        )
    if obj["type"] == "rating" and not present("rating"):
        return Rejected("missing_field", "rating", "rating is required on rating events", data)
    if present("experiment") != present("variant"):
        missing = "variant" if present("experiment") else "experiment"
        return Rejected(
            "missing_field", missing, "experiment and variant must be given together", data
        )
    for spec in FIELDS:
        if spec.kind != "string" or spec.max_length is None or not present(spec.name):
            continue
        value: str = obj[spec.name]
        if spec.id_like and _ID_RULES[spec.name].fullmatch(value) is None:
            return Rejected("bad_id", spec.name, f"{spec.name} must be {spec.id_rule()}", data)
        if not spec.id_like and not 1 <= len(value) <= spec.max_length:
            return Rejected(
                "bad_id", spec.name, f"{spec.name} must be 1-{spec.max_length} characters", data
            )
    rating = obj.get("rating")
    if rating is not None and obj["type"] != "rating":
        return Rejected(
            "rating_not_allowed", "rating", f"a {obj['type']} event must not carry a rating", data
        )
    low, high = rules.scale
    if rating is not None and not low <= rating <= high:
        return Rejected(
            "rating_out_of_scale", "rating", f"rating {rating} is outside [{low}, {high}]", data
        )
    ts: int = obj["ts"]
    late = ts_rejection(ts, _clock_ms(now), rules)
    if late is not None:
        return Rejected(late[0], "ts", late[1], data)
    sent_at = obj.get("sent_at")
    if sent_at is not None and not -EPOCH_MS_LIMIT <= sent_at <= EPOCH_MS_LIMIT:
        return Rejected(
            "ts_too_far_future" if sent_at > 0 else "ts_too_far_past",
            "sent_at",
            f"sent_at must be epoch milliseconds within +-{EPOCH_MS_LIMIT}",
            data,
        )
    return Event(
        event_id=obj["event_id"],
        user=obj["user"],
        item=obj["item"],
        type=obj["type"],
        ts=ts,
        rating=None if rating is None else float(rating),
        experiment=obj.get("experiment"),
        variant=obj.get("variant"),
        source=obj.get("source"),
        sent_at=obj.get("sent_at"),
        recommendation_id=obj.get("recommendation_id"),
        model_version=obj.get("model_version"),
    )


def _clock_ms(now: datetime | int | None) -> int:
    if now is None:
        return now_ms()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime (e.g. datetime.now(tz=UTC))")
        return int(now.timestamp() * 1000)
    return int(now)
