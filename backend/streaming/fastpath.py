"""A fast path of the contract's validator for records in the producer's canonical shape.

``validate_event`` (``backend.streaming.validation``) parses with the standard library and checks
each rule in Python, about 60 us a record. Here ``msgspec`` decodes a record straight into a typed
struct whose field constraints are the contract's per-field rules (types, 64-bit ranges, the
version, the event types, lengths); the characters of ids (``str.strip`` with the id classes, a C
loop, cheaper than a regex per field) and the cross-field rules are left to Python. The answer is
always the one ``validate_event`` gives:

* a record the struct cannot take (a decode or constraint error, an unknown field, a ``null``) or
  with an id of bad characters is handed to ``validate_event``, which finds the reason in the
  contract's order;
* msgspec keeps the last of two equal keys where the contract rejects the record as ``not_json``,
  so the fast path only decides records without a backslash (keys are then written literally and
  every ``"`` delimits a string) whose quote count shows exactly one key per decoded field;
* after a clean decode every rule up to ``unknown_type`` holds, so the remaining checks (rating
  only and always on rating events, experiment with variant, the rating scale, the time window,
  the ``sent_at`` range) run in the contract's order and give its reason codes.

Pure: msgspec and the contract only; no web, database, queue or Spark code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from backend.streaming.events import (
    DEFAULT_RULES,
    EPOCH_MS_LIMIT,
    INT64_MAX,
    INT64_MIN,
    Event,
    EventType,
    Rejected,
    ValidationRules,
    field_spec,
)
from backend.streaming.validation import ts_rejection, validate_event


def _chars(char_class: str) -> str:
    """The characters a regex character class of the contract admits (its classes are ASCII)."""
    pattern = re.compile(char_class)
    return "".join(c for c in map(chr, range(128)) if pattern.fullmatch(c))


def _length(name: str) -> Meta:
    return Meta(min_length=1, max_length=field_spec(name).max_length)


_ID_CHARS: Final = _chars(field_spec("user").chars)
_VERSION_SPEC: Final = field_spec("model_version")
_VERSION_CHARS: Final = _chars(_VERSION_SPEC.chars)
_VERSION_FIRST: Final = frozenset(_chars(_VERSION_SPEC.first_chars or _VERSION_SPEC.chars))
_Int64 = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]


class CanonicalEvent(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """A record whose fields have the contract's types, values and lengths (the characters of
    ids and the cross-field rules are checked after decoding)."""

    schema_version: Literal[1]
    event_id: Annotated[str, _length("event_id")]
    user: Annotated[str, _length("user")]
    item: Annotated[str, _length("item")]
    type: EventType
    rating: float | None = None
    experiment: Annotated[str, _length("experiment")] | None = None
    variant: Annotated[str, _length("variant")] | None = None
    recommendation_id: Annotated[str, _length("recommendation_id")] | None = None
    model_version: Annotated[str, _length("model_version")] | None = None
    ts: _Int64
    source: Annotated[str, _length("source")] | None = None
    sent_at: _Int64 | None = None


_DECODER: Final = msgspec.json.Decoder(CanonicalEvent)
#: Quotes of the required fields: six keys and four string values (all but the version and ts).
_REQUIRED_QUOTES: Final = 2 * (6 + 4)


@dataclass(frozen=True)
class _Bounds:
    """The rules as plain numbers at one clock reading, worked out once per batch."""

    max_bytes: int
    low: float
    high: float
    ts_min: int
    ts_max: int

    @classmethod
    def at(cls, now_ms: int, rules: ValidationRules) -> _Bounds:
        max_age = rules.max_age_ms
        low, high = rules.scale
        return cls(
            max_bytes=rules.max_bytes,
            low=low,
            high=high,
            ts_min=0 if max_age is None else max(0, now_ms - max_age),
            ts_max=now_ms + rules.max_future_skew_ms,
        )


def decode_canonical(
    raw: bytes, now_ms: int, rules: ValidationRules = DEFAULT_RULES
) -> CanonicalEvent | Rejected | None:
    """Judge one raw record at the clock ``now_ms`` (epoch ms) when it has the canonical shape.

    Returns the decoded event when the contract accepts it, a ``Rejected`` with the contract's
    reason when a cross-field rule fails, and ``None`` when the record is not one the fast path
    can decide (``validate_event`` must judge it).
    """
    return _decide(raw, _Bounds.at(now_ms, rules), now_ms, rules)


def _decide(
    raw: bytes, bounds: _Bounds, now_ms: int, rules: ValidationRules
) -> CanonicalEvent | Rejected | None:
    if len(raw) > bounds.max_bytes or b"\\" in raw:
        return None
    try:
        ev = _DECODER.decode(raw)
    except msgspec.DecodeError:  # ValidationError is a DecodeError
        return None
    rating = ev.rating
    experiment = ev.experiment
    variant = ev.variant
    sent_at = ev.sent_at
    optional_ids = (experiment, variant, ev.recommendation_id, ev.source)
    version = ev.model_version
    # One key per decoded field: a repeated key or a null value leaves the count off. Each
    # optional string adds a key and a value (4 quotes), each optional number a key (2).
    quotes = _REQUIRED_QUOTES + 4 * (5 - optional_ids.count(None) - (version is None))
    if rating is not None:
        quotes += 2
    if sent_at is not None:
        quotes += 2
    if raw.count(b'"') != quotes:
        return None
    # A character outside an id's class is a bad_id, which validate_event words per field; it
    # also orders it after the missing_field checks of rule 7.
    ids = _ID_CHARS
    if ev.user.strip(ids) or ev.item.strip(ids):
        return None
    for value in optional_ids:
        if value is not None and value.strip(ids):
            return None
    if version is not None and (version.strip(_VERSION_CHARS) or version[0] not in _VERSION_FIRST):
        return None
    if (
        (ev.type == "rating") == (rating is not None)
        and (experiment is None) == (variant is None)
        and (rating is None or bounds.low <= rating <= bounds.high)
        and bounds.ts_min <= ev.ts <= bounds.ts_max
        and (sent_at is None or -EPOCH_MS_LIMIT <= sent_at <= EPOCH_MS_LIMIT)
    ):
        return ev
    return _cross_field_reason(ev, raw, now_ms, rules)


def _cross_field_reason(
    ev: CanonicalEvent, raw: bytes, now_ms: int, rules: ValidationRules
) -> Rejected:
    """The first cross-field rule ``ev`` breaks (rules 7, 9, 10, 11 in the contract's order),
    worded as ``validate_event`` words it."""
    rating, experiment, etype = ev.rating, ev.experiment, ev.type
    if etype == "rating" and rating is None:
        return Rejected("missing_field", "rating", "rating is required on rating events", raw)
    if (experiment is None) != (ev.variant is None):
        missing = "variant" if experiment is not None else "experiment"
        return Rejected(
            "missing_field", missing, "experiment and variant must be given together", raw
        )
    if rating is not None and etype != "rating":
        return Rejected(
            "rating_not_allowed", "rating", f"a {etype} event must not carry a rating", raw
        )
    low, high = rules.scale
    if rating is not None and not low <= rating <= high:
        return Rejected(
            "rating_out_of_scale", "rating", f"rating {rating} is outside [{low}, {high}]", raw
        )
    late = ts_rejection(ev.ts, now_ms, rules)
    if late is not None:
        return Rejected(late[0], "ts", late[1], raw)
    sent_at = ev.sent_at
    assert sent_at is not None  # the only rule left that can fail
    return Rejected(
        "ts_too_far_future" if sent_at > 0 else "ts_too_far_past",
        "sent_at",
        f"sent_at must be epoch milliseconds within +-{EPOCH_MS_LIMIT}",
        raw,
    )


def to_event(ev: CanonicalEvent) -> Event:
    """The contract's ``Event`` of a decoded record (the rating as a float, as validation gives)."""
    return Event(
        event_id=ev.event_id,
        user=ev.user,
        item=ev.item,
        type=ev.type,
        ts=ev.ts,
        rating=ev.rating,
        experiment=ev.experiment,
        variant=ev.variant,
        source=ev.source,
        sent_at=ev.sent_at,
        recommendation_id=ev.recommendation_id,
        model_version=ev.model_version,
    )


def validate_fast(
    raw: bytes | str, now_ms: int, rules: ValidationRules = DEFAULT_RULES
) -> CanonicalEvent | Event | Rejected:
    """``validate_event(raw, now=now_ms, rules=rules)``'s decision and reason, by the fast path
    when the record has the canonical shape.

    A valid record comes back as a ``CanonicalEvent`` (fast path) or an ``Event`` (exact path);
    both carry the contract's fields under the same names.
    """
    return validate_many([raw], now_ms, rules)[0]


def validate_many(
    raws: Sequence[bytes | str], now_ms: int, rules: ValidationRules = DEFAULT_RULES
) -> list[CanonicalEvent | Event | Rejected]:
    """``validate_fast`` of each record at the one clock ``now_ms``, in order.

    A batch whose every record is canonical and valid (the usual case) is checked a column at a
    time (``_all_valid``); any other batch record by record.
    """
    bounds = _Bounds.at(now_ms, rules)
    data = [raw.encode("utf-8") if isinstance(raw, str) else raw for raw in raws]
    whole = _all_valid(data, bounds)
    if whole is not None:
        return list(whole)
    out: list[CanonicalEvent | Event | Rejected] = []
    append = out.append
    for raw in data:
        decided = _decide(raw, bounds, now_ms, rules)
        append(decided if decided is not None else validate_event(raw, now=now_ms, rules=rules))
    return out


def _all_valid(raws: list[bytes], bounds: _Bounds) -> list[CanonicalEvent] | None:
    """The decoded batch when every record passes ``_decide`` as valid, else ``None``.

    The same checks as ``_decide``, each over a whole column with C-level calls: a quote count
    is never below what its record's decoded fields explain, so the batch's total equals their
    sum only when every record's does; ``str.strip`` of the joined ids of a field is empty only
    when every character of every id is in the class.
    """
    if not raws:
        return []
    joined = b"".join(raws)
    if max(map(len, raws)) > bounds.max_bytes or b"\\" in joined:
        return None
    try:
        events = list(map(_DECODER.decode, raws))
    except msgspec.DecodeError:
        return None
    n = len(events)
    ratings = list(map(_RATING, events))
    experiments = list(map(_EXPERIMENT, events))
    variants = list(map(_VARIANT, events))
    versions = list(map(_VERSION, events))
    sent = [v for v in map(_SENT_AT, events) if v is not None]
    others = [v for col in (map(_RECOMMENDATION, events), map(_SOURCE, events)) for v in col]
    present_ids = [v for col in (experiments, variants, others) for v in col if v is not None]
    present_versions = [v for v in versions if v is not None]
    rated = [r for r in ratings if r is not None]
    quotes = _REQUIRED_QUOTES * n + 4 * (len(present_ids) + len(present_versions))
    quotes += 2 * (len(rated) + len(sent))
    if joined.count(b'"') != quotes:
        return None
    ids = _ID_CHARS
    if (
        "".join(map(_USER, events)).strip(ids)
        or "".join(map(_ITEM, events)).strip(ids)
        or "".join(present_ids).strip(ids)
        or "".join(present_versions).strip(_VERSION_CHARS)
        or not all(v[0] in _VERSION_FIRST for v in present_versions)
    ):
        return None
    types = list(map(_TYPE, events))
    ts = list(map(_TS, events))
    if (
        [t == "rating" for t in types] != [r is not None for r in ratings]
        or [e is None for e in experiments] != [v is None for v in variants]
        or (rated and not (bounds.low <= min(rated) and max(rated) <= bounds.high))
        or not (bounds.ts_min <= min(ts) and max(ts) <= bounds.ts_max)
        or (sent and not (min(sent) >= -EPOCH_MS_LIMIT and max(sent) <= EPOCH_MS_LIMIT))
    ):
        return None
    return events


_USER: Final = attrgetter("user")
_ITEM: Final = attrgetter("item")
_TYPE: Final = attrgetter("type")
_TS: Final = attrgetter("ts")
_RATING: Final = attrgetter("rating")
_EXPERIMENT: Final = attrgetter("experiment")
_VARIANT: Final = attrgetter("variant")
_RECOMMENDATION: Final = attrgetter("recommendation_id")
_VERSION: Final = attrgetter("model_version")
_SOURCE: Final = attrgetter("source")
_SENT_AT: Final = attrgetter("sent_at")
