"""The interaction-event contract, version 1: the one definition every part of Recflow uses.

An event is one JSON object (UTF-8, one per Kafka record or one per line of a JSON-lines file)::

    {"schema_version": 1, "event_id": "e-42", "user": "u17", "item": "i9", "type": "rating",
     "rating": 4.5, "ts": 1700000000000, "experiment": "home", "variant": "B", "source": "sim"}

``FIELDS`` below is the single source of truth. From it are derived:

* ``json_schema()``: a JSON Schema (draft 2020-12) for the README and ``GET /api/v1/events/schema``;
* ``encode_event()``: the wire form (compact JSON, fields in contract order);
* ``backend.streaming.validation.validate_event()``: the Python validator, returning an ``Event``
  or a ``Rejected`` with one reason code from the closed set ``REASONS``;
* ``backend.pipeline.schema.spark_schema()``: the Spark ``StructType`` of a valid event as it is
  stored in the lake;
* ``backend.pipeline.validation``: the same rules as Spark SQL expressions (same reason codes, same
  order of checks), so an event rejected by the Python validator is quarantined by the ingestion
  job, and vice versa.

This module is pure: no web, database, queue or Spark code (a lint contract holds it).

Canonical time form: ``ts`` is the event time as an integer number of **milliseconds since the
Unix epoch (UTC)**. ISO-8601 strings are not accepted: one form means no time-zone ambiguity and an
exact comparison with Kafka record timestamps, which are epoch milliseconds too.

Checks run in this order, and the first failure decides the reason:

1. ``oversized``: the raw record is longer than ``max_bytes`` (UTF-8 bytes).
2. ``not_json``: not valid UTF-8 JSON (one JSON text, nothing after it), a duplicate key,
   NaN/Infinity, containers nested deeper than ``MAX_DEPTH``, or not a JSON object.
3. ``missing_field``: a required field is absent or ``null`` (in field order).
4. ``wrong_type``: a field present with the wrong JSON type (strings must be strings; ``rating`` a
   number; ``schema_version``, ``ts`` and ``sent_at`` integers that fit in 64 bits; booleans are
   never numbers).
5. ``unsupported_version``: ``schema_version`` is not 1.
6. ``unknown_type``: ``type`` is not one of ``EVENT_TYPES``.
7. ``missing_field``: ``rating`` absent on a rating event, or only one of ``experiment`` and
   ``variant`` given.
8. ``bad_id``: ``event_id`` is empty or longer than 128 characters, ``user``, ``item``,
   ``experiment``, ``variant``, ``recommendation_id`` or ``source`` is not 1-64 characters of
   ``[A-Za-z0-9_-]``, or ``model_version`` is not a model version label (``MODEL_VERSION_PATTERN``:
   1-64 characters of ``[A-Za-z0-9._-]`` starting with a letter or digit), in field order.
9. ``rating_not_allowed``: a non-null ``rating`` on an event whose type is not ``rating``.
10. ``rating_out_of_scale``: ``rating`` outside the configured scale (inclusive; default 1-5).
11. ``ts_too_far_future`` / ``ts_too_far_past``: ``ts`` later than now + ``max_future_skew``, or
    negative or earlier than now - ``max_age`` (when a maximum age is set; replays of historical
    ratings need none). ``sent_at`` (field ``sent_at``) outside +-``EPOCH_MS_LIMIT``, the range a
    timestamp in the lake can hold (about 292,000 years either side of 1970).

Unknown extra fields are ignored (forward compatibility); they are not stored in the lake.
``recommendation_id`` and ``model_version`` are optional, so records written before they existed
are still valid v1 events (and lake files written before them lack the two columns).
Duplicates (the same ``event_id`` twice) are not a validation failure: the ingestion job drops
them within its dedupe watermark and counts them.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, get_args

import orjson

SCHEMA_VERSION: Final = 1

EventType = Literal["impression", "click", "view", "rating", "purchase"]
EVENT_TYPES: Final[tuple[EventType, ...]] = get_args(EventType)

#: A rejection reason; the checks run in this order (module docstring).
Reason = Literal[
    "oversized",
    "not_json",
    "missing_field",
    "wrong_type",
    "unsupported_version",
    "unknown_type",
    "bad_id",
    "rating_not_allowed",
    "rating_out_of_scale",
    "ts_too_far_future",
    "ts_too_far_past",
]
#: The closed set of rejection reasons, in the order the checks run.
REASONS: Final[tuple[Reason, ...]] = get_args(Reason)

ID_PATTERN: Final = "[A-Za-z0-9_-]"
ID_MAX_LENGTH: Final = 64
#: A model version label, as the registry names versions (``backend.registry.schemas``'s
#: ``VERSION_PATTERN``; copied because the contract imports no other layer, and a test holds the
#: two equal): a letter or digit, then up to 63 of ``[A-Za-z0-9._-]``.
MODEL_VERSION_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MODEL_VERSION_FIRST: Final = "[A-Za-z0-9]"
MODEL_VERSION_CHARS: Final = "[A-Za-z0-9._-]"
MODEL_VERSION_MAX_LENGTH: Final = 64
EVENT_ID_MAX_LENGTH: Final = 128
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
#: How deeply objects and arrays may nest in a record (the event object itself is depth 1).
MAX_DEPTH: Final = 64
#: The largest epoch millisecond a lake timestamp (64-bit microseconds) can hold.
EPOCH_MS_LIMIT: Final = INT64_MAX // 1000

FieldKind = Literal["string", "integer", "number"]
#: The Spark SQL type a field of each kind is read as (before ``ts``/``sent_at`` become timestamps).
SQL_TYPES: Final[dict[str, str]] = {"string": "string", "integer": "bigint", "number": "double"}


@dataclass(frozen=True)
class FieldSpec:
    """One field of the contract.

    ``required`` fields must be present and non-null; ``rating`` is required only on rating events
    and ``experiment``/``variant`` only together (rules 7 and 9 in the module docstring).
    ``id_like`` strings must be 1-``max_length`` characters of the class ``chars`` (default
    ``ID_PATTERN``), the first one also of ``first_chars`` when given (``id_regex``); other
    strings only 1-``max_length`` characters.
    """

    name: str
    kind: FieldKind
    required: bool
    description: str
    max_length: int | None = None
    id_like: bool = False
    chars: str = ID_PATTERN
    first_chars: str | None = None

    def id_regex(self) -> str:
        """The unanchored regular expression of an id-like value (the same text in Python's
        ``re``, Java's ``Pattern`` and JSON Schema): ``C{1,N}``, or ``FC{0,N-1}`` with a first
        character class ``F``."""
        if not self.id_like or self.max_length is None:
            raise ValueError(f"{self.name} is not an id-like field")
        if self.first_chars is None:
            return f"{self.chars}{{1,{self.max_length}}}"
        return f"{self.first_chars}{self.chars}{{0,{self.max_length - 1}}}"

    def id_rule(self) -> str:
        """The id rule in words, for rejection messages."""
        rule = f"1-{self.max_length} characters of {self.chars}"
        if self.first_chars is not None:
            rule += f", the first one of {self.first_chars}"
        return rule


FIELDS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("schema_version", "integer", True, "Contract version; always 1."),
    FieldSpec(
        "event_id",
        "string",
        True,
        "Unique id of the event, chosen by the producer; repeats are dropped as duplicates.",
        max_length=EVENT_ID_MAX_LENGTH,
    ),
    FieldSpec("user", "string", True, "User id.", max_length=ID_MAX_LENGTH, id_like=True),
    FieldSpec("item", "string", True, "Item id.", max_length=ID_MAX_LENGTH, id_like=True),
    FieldSpec("type", "string", True, "Interaction type: " + ", ".join(EVENT_TYPES) + "."),
    FieldSpec(
        "rating",
        "number",
        False,
        "Explicit rating within the configured scale; required iff type is rating, else null.",
    ),
    FieldSpec(
        "experiment",
        "string",
        False,
        "A/B experiment the user was exposed to; given together with variant.",
        max_length=ID_MAX_LENGTH,
        id_like=True,
    ),
    FieldSpec(
        "variant",
        "string",
        False,
        "Variant of the experiment; given together with experiment.",
        max_length=ID_MAX_LENGTH,
        id_like=True,
    ),
    FieldSpec(
        "recommendation_id",
        "string",
        False,
        "Id of the recommendation answer an impression or feedback event belongs to.",
        max_length=ID_MAX_LENGTH,
        id_like=True,
    ),
    FieldSpec(
        "model_version",
        "string",
        False,
        "Registry version label of the model that produced the recommendation.",
        max_length=MODEL_VERSION_MAX_LENGTH,
        id_like=True,
        chars=MODEL_VERSION_CHARS,
        first_chars=MODEL_VERSION_FIRST,
    ),
    FieldSpec("ts", "integer", True, "Event time in milliseconds since the Unix epoch (UTC)."),
    FieldSpec(
        "source",
        "string",
        False,
        "Ingestion metadata: name of the producer (e.g. simulator, replay).",
        max_length=ID_MAX_LENGTH,
        id_like=True,
    ),
    FieldSpec(
        "sent_at",
        "integer",
        False,
        "Ingestion metadata: when the producer sent the event, epoch milliseconds (UTC).",
    ),
)
FIELD_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FIELDS)
_FIELD_BY_NAME: Final[dict[str, FieldSpec]] = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class ValidationRules:
    """Limits applied on top of the field types.

    ``max_bytes`` bounds the raw record (UTF-8 bytes); ``scale`` is the inclusive rating range;
    ``max_future_skew`` is how far ``ts`` may be ahead of the validator's clock; ``max_age`` is
    how far it may be behind (``None``: any non-negative ``ts``, as a replay of old ratings needs).
    """

    max_bytes: int = 4096
    scale: tuple[float, float] = (1.0, 5.0)
    max_future_skew: timedelta = timedelta(minutes=5)
    max_age: timedelta | None = None

    def __post_init__(self) -> None:
        if self.max_bytes < 64:
            raise ValueError(f"max_bytes must be at least 64, got {self.max_bytes}")
        low, high = self.scale
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"the rating scale must be two finite numbers low < high, got {low}")
        if self.max_future_skew < timedelta(0):
            raise ValueError("max_future_skew must not be negative")
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise ValueError("max_age must be positive, or None for no limit")

    @property
    def max_future_skew_ms(self) -> int:
        return int(self.max_future_skew / timedelta(milliseconds=1))

    @property
    def max_age_ms(self) -> int | None:
        return None if self.max_age is None else int(self.max_age / timedelta(milliseconds=1))


DEFAULT_RULES: Final = ValidationRules()


@dataclass(frozen=True)
class Event:
    """A valid interaction event (contract v1). ``ts`` is epoch milliseconds, UTC."""

    event_id: str
    user: str
    item: str
    type: EventType
    ts: int
    rating: float | None = None
    experiment: str | None = None
    variant: str | None = None
    source: str | None = None
    sent_at: int | None = None
    recommendation_id: str | None = None
    model_version: str | None = None
    schema_version: int = field(default=SCHEMA_VERSION)

    @property
    def time(self) -> datetime:
        """The event time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.ts / 1000, tz=UTC)


#: What the Python validator returns for a valid event.
ValidEvent = Event


@dataclass(frozen=True)
class Rejected:
    """A record that fails the contract: one reason code, the field at fault, a message, the raw."""

    reason: Reason
    field: str | None
    message: str
    raw: bytes


def new_event_id() -> str:
    """A random 32-character event id (UUID4 hex), for producers without a natural id."""
    return uuid.uuid4().hex


def now_ms() -> int:
    """The current time in epoch milliseconds (UTC)."""
    return int(datetime.now(tz=UTC).timestamp() * 1000)


def encode_event(event: Event | Mapping[str, Any]) -> bytes:
    """Serialize an event to compact UTF-8 JSON (the wire form of Kafka values and JSON lines).

    An ``Event`` is written with its fields in contract order (``FIELD_NAMES``) and its absent
    optional fields left out: the canonical shape the ingestion's fast path recognises. A mapping
    is written as given, which lets tests and the simulator produce malformed events.
    """
    if isinstance(event, Event):
        payload = {n: v for n in FIELD_NAMES if (v := getattr(event, n)) is not None}
        return orjson.dumps(payload)
    return orjson.dumps(dict(event))


def json_schema(rules: ValidationRules = DEFAULT_RULES) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of contract v1 under ``rules`` (rating scale).

    Limits that JSON Schema cannot state (the raw-size bound, the time window relative to the
    validator's clock, 64-bit integer ranges) are described in ``description`` fields.
    """
    props: dict[str, Any] = {}
    for spec in FIELDS:
        prop: dict[str, Any] = {"description": spec.description}
        if spec.kind == "string":
            prop["type"] = "string"
            if spec.id_like:
                prop["pattern"] = f"^{spec.id_regex()}$"
            elif spec.max_length is not None:
                prop["minLength"] = 1
                prop["maxLength"] = spec.max_length
        elif spec.kind == "integer":
            prop["type"] = "integer"
            prop["minimum"] = INT64_MIN
            prop["maximum"] = INT64_MAX
        else:
            prop["type"] = "number"
        if not spec.required:
            prop["type"] = [prop["type"], "null"]
        props[spec.name] = prop
    props["schema_version"] = {**props["schema_version"], "const": SCHEMA_VERSION}
    props["type"] = {**props["type"], "enum": list(EVENT_TYPES)}
    props["ts"] = {**props["ts"], "minimum": 0}
    props["sent_at"] = {**props["sent_at"], "minimum": -EPOCH_MS_LIMIT, "maximum": EPOCH_MS_LIMIT}
    low, high = rules.scale
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:recflow:schema:interaction-event:1",
        "title": "Recflow interaction event v1",
        "description": (
            f"One interaction. Records longer than {rules.max_bytes} UTF-8 bytes are rejected; ts "
            f"may be at most {rules.max_future_skew_ms} ms ahead of the ingesting clock"
            + (
                f" and at most {rules.max_age_ms} ms behind it"
                if rules.max_age_ms is not None
                else ""
            )
            + ". Unknown fields are ignored."
        ),
        "type": "object",
        "required": [f.name for f in FIELDS if f.required],
        "properties": props,
        "dependentRequired": {"experiment": ["variant"], "variant": ["experiment"]},
        "if": {"properties": {"type": {"const": "rating"}}, "required": ["type"]},
        "then": {
            "required": ["rating"],
            "properties": {"rating": {"type": "number", "minimum": low, "maximum": high}},
        },
        "else": {"properties": {"rating": {"type": "null"}}},
        "additionalProperties": True,
    }


def field_spec(name: str) -> FieldSpec:
    """The ``FieldSpec`` of a contract field, by name."""
    try:
        return _FIELD_BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a field of the event contract v1") from None
