"""Contract v1 validation as Spark SQL expressions, derived from ``backend.streaming.events``.

The raw record is parsed once with ``try_parse_json`` into a ``VARIANT`` (Spark 4). A variant keeps
each JSON value's own type, so ``schema_of_variant`` tells a JSON string from a number exactly as
Python's ``json`` does. ``from_json`` against a ``StructType`` cannot: it turns ``"user": 123``
into the string ``"123"`` and would let a wrong type through. The checks follow the same
``FIELDS`` table and the same order as ``validate_event``, so both give the same reason code.

Records off the canonical shape are first checked to be one JSON text as Python's ``json``
reads it (``native.json_text``: strict UTF-8, nothing after the value, nesting at most
``events.MAX_DEPTH``), because Spark's JSON parsers stop after the first value.

Known differences from the Python validator (all on records no producer of ours writes):

* A number too large for a double (``1e400``) is ``inf`` in Python (so ``rating_out_of_scale``)
  and may fail to parse in Spark (``not_json``).
* Without the JVM functions (no JDK to compile them, see ``native``), Spark's parser judges JSON
  text alone: text after the object is ignored, invalid UTF-8 is decoded leniently, and nesting
  is limited by Jackson's depth limit instead of ``MAX_DEPTH``.
* ``now`` is the micro-batch's timestamp (deterministic when a batch is replayed after a crash),
  not the moment each record is looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from backend.pipeline import native as _native
from backend.streaming.events import (
    EPOCH_MS_LIMIT,
    EVENT_TYPES,
    FIELDS,
    SCHEMA_VERSION,
    SQL_TYPES,
    FieldSpec,
    ValidationRules,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INT", "BIGINT")

#: The projections of ``with_validation`` (column name to expression, applied in order)
#: before and after ``before_clock``, and the names of the helper columns.
_Projections = tuple[list[dict[str, "Column"]], list[dict[str, "Column"]], list[str]]


def with_validation(
    df: DataFrame,
    value: str,
    *,
    now_ms: Column,
    rules: ValidationRules,
    value_is_binary: bool = False,
    fast_path: bool = True,
    native: bool = True,
    before_clock: Callable[[DataFrame], DataFrame] | None = None,
) -> DataFrame:
    """``df`` plus the columns ``reason``, ``field`` and the typed event columns.

    ``value`` names the column holding the raw record. ``reason`` is null for a valid record, else
    a code from ``events.REASONS``; ``field`` names the field at fault (null when the whole record
    is at fault). The typed columns (``FIELDS`` order; ``ts`` and ``sent_at`` as UTC timestamps)
    are meaningful only where ``reason`` is null. ``now_ms`` is the validating clock in epoch
    milliseconds (the ingestion job passes the micro-batch timestamp).

    Fast path (``fast_path=True``): a record in the canonical shape (``canonical_pattern``: the
    contract's fields in ``FIELDS`` order, each of its JSON type, nothing else) is read by the
    JVM parser of ``backend.pipeline.native`` when the session has it (``native=True``), else
    recognised by the regex and parsed with ``from_json``. Either is several times cheaper than
    a VARIANT; the shape itself proves the JSON types, so the remaining checks run on the typed
    values. Every other record takes the VARIANT path. All paths give the same result (the tests
    run the reason cases through each).

    The record is parsed once and each field's JSON type looked up once, in separate projections:
    every check refers to them many times, and inside a CASE expression Spark would otherwise
    evaluate them again at each reference.

    The expressions are built once per JVM and set of arguments (``_projections``) and reused:
    building them takes about 4,000 calls into the JVM, 1-2 s, which every ingestion run (a new
    streaming query) would otherwise pay before reading a record.

    ``before_clock`` is applied to the frame between the checks that do not need ``now_ms`` and
    those that do (``ts`` against the clock), with only the columns the latter need. The
    ingestion job adds the micro-batch's timestamp there behind a code generation boundary:
    Spark writes that timestamp into the code it generates, and the large validation code is
    then the same in every micro-batch (compiled once, kept hot by the JIT).
    """
    jvm = _native.available(df.sparkSession)
    use_native = fast_path and native and jvm
    key = (value, value_is_binary, fast_path, use_native, jvm, rules, str(now_ms))
    gateway = df.sparkSession.sparkContext._gateway
    cached = _PROJECTIONS.get(key)
    if cached is None or cached[0] is not gateway:
        if len(_PROJECTIONS) >= _MAX_PROJECTIONS:
            _PROJECTIONS.clear()
        cached = (
            gateway,
            _projections(value, now_ms, rules, value_is_binary, fast_path, use_native, jvm),
        )
        _PROJECTIONS[key] = cached
    before, after, temps = cached[1]
    for stage in before:
        df = df.withColumns(stage)
    df = df.drop(*temps)
    if before_clock is not None:
        df = before_clock(df)
    for stage in after:
        df = df.withColumns(stage)
    return df.drop(*_CLOCK_INPUTS)


#: ``with_validation``'s expressions by arguments, each with the py4j gateway (the JVM) they
#: belong to; a new JVM (a Spark context started again in a new gateway) builds them again.
_PROJECTIONS: dict[tuple[object, ...], tuple[object, _Projections]] = {}
_MAX_PROJECTIONS = 16


def _projections(
    value: str,
    now_ms: Column,
    rules: ValidationRules,
    value_is_binary: bool,
    fast_path: bool,
    use_native: bool,
    jvm: bool,
) -> _Projections:
    """The projections ``with_validation`` applies in order, and the helper columns it drops."""
    from pyspark.sql import functions as F

    stages: list[dict[str, Column]] = []
    text = F.col(value).cast("string") if value_is_binary else F.col(value)
    size = F.octet_length(F.col(value))
    binary = F.col(value) if value_is_binary else F.col(value).cast("binary")
    if use_native:
        # The JVM parser checks the canonical shape and reads the fields in one pass.
        stages.append({"_size": size, "_j": _native.parse_bytes(binary)})
        stages.append({"_canon": F.col("_j").isNotNull(), "_other": F.col("_j").isNull()})
    else:
        canonical = text.rlike(canonical_pattern()) if fast_path else F.lit(False)
        fast_schema = ", ".join(f"`{s.name}` {SQL_TYPES[s.kind]}" for s in FIELDS)
        stages.append({"_size": size, "_canon": canonical})
        stages.append(
            {
                "_j": F.when(F.col("_canon"), F.from_json(text, fast_schema)),
                "_other": ~F.col("_canon"),
            }
        )
    # Only a JSON text as Python reads it goes on to the VARIANT parse (native.json_text);
    # without the JVM functions, Spark's parser is the judge (module doc).
    parse_other = F.col("_other") & _native.json_text(binary) if jvm else F.col("_other")
    stages.append(
        {
            # A JSON text that parses and starts with "{" is an object; arrays and scalars don't.
            # Only looked at for records off the fast path (a canonical one is an object).
            "_is_object": F.when(
                F.col("_other"), text.startswith("{") | text.rlike(r"\A[ \t\r\n]+\{")
            ),
            # Each record is parsed once: canonical ones on the fast path, others as a VARIANT.
            "_v": F.when(parse_other, F.try_parse_json(text)),
        }
    )
    # One lookup per field; its JSON type and typed value are read from the small sub-variant.
    stages.append(
        {f"_f_{s.name}": F.variant_get(F.col("_v"), f"$.{s.name}", "variant") for s in FIELDS}
    )
    fast_kinds = {"string": "STRING", "integer": "BIGINT", "number": "DOUBLE"}

    def fast_value(spec: FieldSpec) -> Column:
        # The JVM parser gives strings as bytes (``native.parse_bytes``).
        field = F.col(f"_j.{spec.name}")
        return field.cast("string") if use_native and spec.kind == "string" else field

    stages.append(
        {
            **{
                f"_k_{s.name}": F.when(
                    F.col("_canon"),
                    F.when(F.col(f"_j.{s.name}").isNotNull(), F.lit(fast_kinds[s.kind])),
                ).otherwise(F.schema_of_variant(F.col(f"_f_{s.name}")))
                for s in FIELDS
            },
            **{
                f"_t_{s.name}": F.when(F.col("_canon"), fast_value(s)).otherwise(
                    F.try_variant_get(F.col(f"_f_{s.name}"), "$", SQL_TYPES[s.kind])
                )
                for s in FIELDS
            },
        }
    )
    before, at_clock, after, reasons, fields = _first_failure(rules, now_ms, use_native)
    stages.append({"_before": before, "_after": after})
    # After ``before_clock``: the checks that need the clock, then the first failing check.
    late: list[dict[str, Column]] = [
        {"_check": F.coalesce(F.col("_before"), at_clock, F.col("_after"))},
        {
            "reason": F.get(reasons, F.col("_check")).cast("string"),
            "field": F.get(fields, F.col("_check")).cast("string"),
        },
    ]
    # Typed values of valid records only: a rejected one may hold values no type can (a
    # schema_version beyond INT, a ts beyond the timestamp range), and converting them would
    # fail the whole batch.
    valid = F.col("reason").isNull()
    typed: dict[str, Column] = {}
    for spec in FIELDS:
        col = F.col(f"_t_{spec.name}")
        if spec.name in ("ts", "sent_at"):
            typed[spec.name] = F.when(valid, F.timestamp_millis(col))
        elif spec.name == "schema_version":
            typed[spec.name] = F.when(valid, col.cast("int"))
        else:
            typed[spec.name] = F.when(valid, col)
    late.append(typed)
    temps = ["_size", "_canon", "_other", "_is_object", "_j", "_v"]
    temps += [f"_{p}_{s.name}" for s in FIELDS for p in "fk"]
    return stages, late, temps


#: The helper columns that cross ``before_clock``: the first failing check before and after
#: the clock checks, and the typed values.
_CLOCK_INPUTS = ["_before", "_after", "_check", *[f"_t_{s.name}" for s in FIELDS]]


_WS = r"[ \t\n\r]*"
# A JSON string, exactly: no raw control characters, only the escapes JSON allows.
_STRING = r'"(?:[^"\\\x00-\x1F]++|\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4}))*+"'
# Integers of at most 18 digits fit in 64 bits; no exponent, so a double holds every value.
_INTEGER = r"-?(?:0|[1-9][0-9]{0,17})"
_NUMBER = r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?"
_KIND_PATTERNS = {"string": _STRING, "integer": _INTEGER, "number": _NUMBER}


def canonical_pattern() -> str:
    """A Java regex for records that need no VARIANT parse: a JSON object with the contract's
    fields in ``FIELDS`` order (JSON whitespace allowed between tokens), required ones present and
    of their JSON type, optional ones absent, ``null`` or of their type, and no other field.

    Values the contract restricts further are matched as exactly as the contract allows where a
    regex does it cheaply: ``schema_version`` is the supported version, ``type`` one of the event
    types, and id-like strings as their rule says (``FieldSpec.id_regex``) without escapes.
    A match proves every check marked ``proven`` in ``_checks`` passes and that the text is
    valid JSON, so ``from_json`` reads it exactly as a VARIANT would. Records written by
    ``events.encode_event`` match; a record that does not (an escaped id, another version) is
    still judged exactly, by the VARIANT path.
    """
    parts: list[str] = []
    for spec in FIELDS:
        value = _value_pattern(spec)
        member = f'"{spec.name}"{_WS}:{_WS}' + (value if spec.required else f"(?:{value}|null)")
        sep = "" if not parts else f"{_WS},{_WS}"
        parts.append(f"{sep}{member}" if spec.required else f"(?:{sep}{member})?")
    # The first field is required, so no optional member ever starts with a dangling comma.
    assert FIELDS[0].required
    return rf"\A{_WS}\{{{_WS}" + "".join(parts) + rf"{_WS}\}}{_WS}\z"


def _value_pattern(spec: FieldSpec) -> str:
    if spec.name == "schema_version":
        return str(SCHEMA_VERSION)
    if spec.name == "type":
        return '"(?:' + "|".join(EVENT_TYPES) + ')"'
    if spec.id_like and spec.max_length is not None:
        return f'"{spec.id_regex()}"'
    return _KIND_PATTERNS[spec.kind]


def _first_failure(
    rules: ValidationRules, now_ms: Column, native: bool = False
) -> tuple[Column, Column, Column, Column, Column]:
    """The index of the first failing check (null: none) among the checks before those that
    need the clock, among those, and among the checks after them; and the reasons and fields
    by index. The first failing check of a record is the first non-null of the three.

    ``native``: canonical records are recognised by the JVM parser, which also checks the
    length of every string with a maximum (``native.contract_spec``), so those checks are
    proven too; the regular expression proves the lengths of ids only."""
    from pyspark.sql import functions as F

    def kind(name: str) -> Column:
        return F.col(f"_k_{name}")

    def present(name: str) -> Column:
        return kind(name).isNotNull() & (kind(name) != F.lit("VOID"))

    def kind_ok(spec: FieldSpec) -> Column:
        k = kind(spec.name)
        if spec.kind == "string":
            return k == F.lit("STRING")
        if spec.kind == "integer":
            return k.isin(*_INTEGER_TYPES)
        return k.isin(*_INTEGER_TYPES, "DOUBLE", "FLOAT") | k.startswith("DECIMAL")

    def typed(name: str) -> Column:
        return F.col(f"_t_{name}")

    event_type = typed("type")
    rating = typed("rating")
    ts = typed("ts")
    low, high = rules.scale

    # (condition, reason, field, proven): ``proven`` checks always pass on a record that matches
    # ``canonical_pattern``, so canonical records evaluate only the others. The checks that
    # compare with the clock (``now_ms``) come together, and none of them is proven.
    checks: list[tuple[Column, str, str | None, bool]] = [
        (F.col("_size") > F.lit(rules.max_bytes), "oversized", None, False),
        (~F.col("_canon") & (F.col("_v").isNull() | ~F.col("_is_object")), "not_json", None, True),
    ]
    checks += [(~present(s.name), "missing_field", s.name, True) for s in FIELDS if s.required]
    checks += [(present(s.name) & ~kind_ok(s), "wrong_type", s.name, True) for s in FIELDS]
    checks += [
        (
            typed("schema_version") != F.lit(SCHEMA_VERSION),
            "unsupported_version",
            "schema_version",
            True,
        ),
        (~event_type.isin(*EVENT_TYPES), "unknown_type", "type", True),
        ((event_type == F.lit("rating")) & ~present("rating"), "missing_field", "rating", False),
        (present("experiment") & ~present("variant"), "missing_field", "variant", False),
        (present("variant") & ~present("experiment"), "missing_field", "experiment", False),
    ]
    for spec in FIELDS:
        if spec.kind != "string" or spec.max_length is None:
            continue
        col = typed(spec.name)
        if spec.id_like:
            bad = ~col.rlike(rf"\A{spec.id_regex()}\z")
        else:
            bad = (F.char_length(col) < 1) | (F.char_length(col) > spec.max_length)
        checks.append((present(spec.name) & bad, "bad_id", spec.name, spec.id_like or native))
    checks += [
        (
            present("rating") & (event_type != F.lit("rating")),
            "rating_not_allowed",
            "rating",
            False,
        ),
        ((rating < F.lit(low)) | (rating > F.lit(high)), "rating_out_of_scale", "rating", False),
    ]
    clock_from = len(checks)
    checks.append((ts > now_ms + F.lit(rules.max_future_skew_ms), "ts_too_far_future", "ts", False))
    too_old = ts < F.lit(0)
    if rules.max_age_ms is not None:
        too_old = too_old | (ts < now_ms - F.lit(rules.max_age_ms))
    checks.append((too_old, "ts_too_far_past", "ts", False))
    clock_to = len(checks)
    sent_at = typed("sent_at")
    checks += [
        (sent_at > F.lit(EPOCH_MS_LIMIT), "ts_too_far_future", "sent_at", False),
        (sent_at < F.lit(-EPOCH_MS_LIMIT), "ts_too_far_past", "sent_at", False),
    ]

    # One CASE picks the first failing check; its index looks up the reason and the field.
    def first_of(indexed: list[tuple[int, Column]]) -> Column:
        first: Column = F.lit(None).cast("int")
        for index, cond in reversed(indexed):
            # A null condition means "this check does not apply" (e.g. no rating to compare).
            first = F.when(F.coalesce(cond, F.lit(False)), F.lit(index)).otherwise(first)
        return first

    def first_in(indices: range) -> Column:
        every = [(i, checks[i][0]) for i in indices]
        unproven = [(i, checks[i][0]) for i in indices if not checks[i][3]]
        return F.when(F.col("_canon"), first_of(unproven)).otherwise(first_of(every))

    before = first_in(range(clock_from))
    at_clock = first_of([(i, checks[i][0]) for i in range(clock_from, clock_to)])
    after = first_in(range(clock_to, len(checks)))
    reasons = F.array(*[F.lit(code) for _, code, _, _ in checks])
    fields = F.array(*[F.lit(name).cast("string") for _, _, name, _ in checks])
    return before, at_clock, after, reasons, fields
