"""The JVM side of validation: a parser of canonical event records, compiled on first use.

``java/recflow/spark/CanonicalEvent.java`` reads a record in the contract's canonical shape (the
shape ``validation.canonical_pattern`` describes, with plain ASCII strings) straight from its
bytes and returns the typed fields; any other record gives null and takes the exact VARIANT path.
It replaces the regular expression and ``from_json`` of the fast path, which between them took
about 4.5 s of CPU per million records; the parser takes under 1 s.

``java/recflow/spark/DirectLocalFileSystem.java`` (and ``DirectLocalFs.java``, its ``FileContext``
side) is Hadoop's local file system with ``chmod`` and the symlink check made in the JVM: without
Hadoop's native library, Hadoop forks ``chmod`` or ``readlink`` for every file a micro-batch
creates or renames (about a hundred processes per batch).

``java/recflow/spark/JsonText.java`` tells whether a record is one JSON text exactly as Python's
``json`` reads it (strict UTF-8, nothing after the value, ``events.MAX_DEPTH``): Spark's JSON
parsers stop after the first value and would accept ``{...}garbage``.

The contract reaches the parser as a string built from ``events.FIELDS`` (``contract_spec``), so
the Python contract stays the one definition. The jar is compiled with the JDK's ``javac``
against the bundled pyspark's jars the first time a session is built, and cached under a name
that hashes the source, the contract and the Spark version. Without ``javac`` (a JRE only) or
when compiling fails, the session starts without it and validation uses the regex fast path;
``available`` tells which.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from backend.streaming.events import (
    EVENT_TYPES,
    FIELDS,
    MAX_DEPTH,
    SCHEMA_VERSION,
    SQL_TYPES,
    FieldSpec,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession

#: The SQL function names the parser and the JSON text check are registered under.
FUNCTION = "recflow_canonical_event"
CLASS = "recflow.spark.CanonicalEvent"
JSON_TEXT_FUNCTION = "recflow_json_text"
JSON_TEXT_CLASS = "recflow.spark.JsonText"
SOURCES = Path(__file__).parent / "java"

log = logging.getLogger(__name__)
_missing: set[str] = set()  # applications whose classpath lacks the parser


def contract_spec() -> str:
    """The contract as the parser reads it: ``name|kind|required|rule`` per field, ``;``-joined.

    kind is ``s``, ``i`` or ``n`` (string, integer, number); rule is ``=v`` (the supported
    version), ``e:a/b`` (the event types), ``id:N:C`` (1-N characters of the field's character
    class, whose body is ``C``), ``id:N:C:F`` (the same, the first character also of the class
    whose body is ``F``), ``len:N`` (1-N characters, for other strings with a maximum length)
    or empty.
    """
    return ";".join(f"{s.name}|{s.kind[0]}|{int(s.required)}|{_rule(s)}" for s in FIELDS)


def _rule(spec: FieldSpec) -> str:
    if spec.name == "schema_version":
        return f"={SCHEMA_VERSION}"
    if spec.name == "type":
        return "e:" + "/".join(EVENT_TYPES)
    if spec.id_like and spec.max_length is not None:
        rule = f"id:{spec.max_length}:{_class_body(spec.chars)}"
        if spec.first_chars is not None:
            rule += f":{_class_body(spec.first_chars)}"
        return rule
    if spec.kind == "string" and spec.max_length is not None:
        return f"len:{spec.max_length}"
    return ""


def _class_body(chars: str) -> str:
    """The body of a character class ``[...]`` as the parser reads it (no ``:``, its separator)."""
    assert chars.startswith("[") and chars.endswith("]") and ":" not in chars, chars
    return chars[1:-1]


def return_schema() -> str:
    """The parser's result type: the fields in contract order, strings as their UTF-8 bytes."""
    spark_types = {**SQL_TYPES, "string": "binary"}
    return ", ".join(f"`{s.name}` {spark_types[s.kind]}" for s in FIELDS)


def _sources() -> list[Path]:
    return sorted(SOURCES.rglob("*.java"))


def jar_name() -> str:
    """The jar's file name: a hash of the sources, the contract and the Spark version."""
    import pyspark

    digest = hashlib.sha256()
    for path in _sources():
        digest.update(path.relative_to(SOURCES).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(contract_spec().encode())
    digest.update(pyspark.__version__.encode())
    return f"recflow-spark-{digest.hexdigest()[:16]}.jar"


def find_javac() -> str | None:
    """``$JAVA_HOME/bin/javac`` if present, else ``javac`` on the PATH, else None."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "javac"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("javac")


def build_jar(cache_dir: Path, *, javac: str | None = None) -> Path | None:
    """The parser's jar in ``cache_dir``, compiled now if it is not there yet; None (with a
    warning) when there is no ``javac`` or it fails. Safe to call from several processes."""
    import pyspark

    target = cache_dir / jar_name()
    if target.is_file():
        return target
    javac = javac or find_javac()
    if javac is None:
        log.warning(
            "no javac found (install a JDK, or set JAVA_HOME to one): validation uses the "
            "slower regular-expression fast path"
        )
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    classpath = str(Path(pyspark.__file__).parent / "jars" / "*")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
        classes = Path(tmp) / "classes"
        command = [
            javac,
            "--release",
            "17",
            "-nowarn",
            "-cp",
            classpath,
            "-d",
            str(classes),
            *(str(p) for p in _sources()),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("compiling the event parser failed (%s): using the regex fast path", exc)
            return None
        if done.returncode != 0:
            log.warning(
                "compiling the event parser failed: using the regex fast path\n%s",
                done.stderr.strip(),
            )
            return None
        partial = Path(tmp) / target.name
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
        os.replace(partial, target)
    log.info("compiled the event parser into %s", target)
    return target


def local_fs_conf(jar: Path) -> dict[str, str]:
    """Spark settings for Hadoop's local file system without a process forked per file
    operation (``DirectLocalFileSystem.java``), for a ``local`` master. The jar goes on the
    driver's own class path: Spark opens files before it loads ``spark.jars``."""
    return {
        "spark.driver.extraClassPath": str(jar.resolve()),
        "spark.hadoop.fs.file.impl": "recflow.spark.DirectLocalFileSystem",
        "spark.hadoop.fs.AbstractFileSystem.file.impl": "recflow.spark.DirectLocalFs",
    }


def available(spark: SparkSession) -> bool:
    """Whether the parser is on this session's classpath; registers it as ``FUNCTION`` once."""
    if spark.catalog.functionExists(FUNCTION) and spark.catalog.functionExists(JSON_TEXT_FUNCTION):
        return True
    app = spark.sparkContext.applicationId
    if app in _missing:
        return False
    try:
        spark.udf.registerJavaFunction(FUNCTION, CLASS, return_schema())
        spark.udf.registerJavaFunction(JSON_TEXT_FUNCTION, JSON_TEXT_CLASS, "boolean")
    except Exception as exc:  # py4j reports a missing class as several exception types
        log.warning(
            "the event parser is not on the Spark classpath (%s): validation uses the slower "
            "regular-expression fast path",
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
        )
        _missing.add(app)
        return False
    return True


def parse(value: Column) -> Column:
    """The parser applied to a binary column: a struct of the typed fields (``FIELDS`` order;
    string, bigint, double), or null for a record not in the canonical shape."""
    typed = ", ".join(f"`{s.name}`: {SQL_TYPES[s.kind]}" for s in FIELDS)
    return parse_bytes(value).cast(f"struct<{typed}>")


def parse_bytes(value: Column) -> Column:
    """``parse`` with the string fields left as their UTF-8 bytes (``return_schema``).

    Casting a field to a string on its own wraps its bytes; casting the whole struct copies
    every string (about 4% of ingestion's CPU). The parser has checked the bytes are ASCII.
    """
    from pyspark.sql import functions as F

    spec = F.lit(bytearray(contract_spec().encode("ascii")))
    return F.call_function(FUNCTION, value, spec)


def json_text(value: Column) -> Column:
    """Whether each record of a binary column is one JSON text as Python's ``json`` reads it
    (strict UTF-8, nothing after the value, nesting at most ``events.MAX_DEPTH``). Spark's own
    parsers accept ``{...}`` followed by anything."""
    from pyspark.sql import functions as F

    return F.call_function(JSON_TEXT_FUNCTION, value, F.lit(MAX_DEPTH))
