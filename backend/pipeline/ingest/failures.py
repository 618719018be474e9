"""When the ingestion query fails: which failures are the source being briefly away, what the job
reports, and waiting for the source before a restart.

With a ``local[N]`` master Spark does not retry a failed task, and its Kafka offset reader gives
up after a few attempts: a broker that restarts mid-run fails the query. Such a failure (a Kafka
timeout or disconnection, see ``is_transient_source_error``) restarts the query from the same
checkpoint once ``check_source`` passes again; the batch that was running is replayed, which the
exactly-once writer (``writer``) makes safe. Counts are kept per batch id across the restarts, so a
replayed batch is counted once. Any other failure ends the run at once.
"""

from __future__ import annotations

import re
import threading
import time

from backend.pipeline.ingest.options import IngestOptions
from backend.pipeline.sources import SourceUnavailableError, check_source

_MAX_BACKOFF_S = 30.0

#: Failures of the Kafka source that end once the broker is back: the broker was restarting or
#: unreachable. Spark reports them from the driver (planning a batch: "Timed out waiting for a
#: node assignment") or from a task, in which case the text comes wrapped in the Python
#: traceback of ``foreachBatch`` (the batch's Spark jobs run from there).
_TRANSIENT_SOURCE_ERROR = re.compile(
    r"org\.apache\.kafka\.common\.errors\.(?:"
    r"TimeoutException|DisconnectException|NetworkException|BrokerNotAvailableException"
    r"|LeaderNotAvailableException|NotLeaderOrFollowerException|UnknownTopicOrPartitionException"
    r"|CoordinatorNotAvailableException|NotCoordinatorException)\b"
    r"|Timed out waiting for a node assignment"
    r"|Cannot fetch record for offset -?\d+ in \d+ milliseconds"
)


class IngestError(RuntimeError):
    """The streaming query failed; the message carries Spark's reason."""


def is_transient_source_error(text: str) -> bool:
    """Whether a query failure (its ``failure_text``) is the source being briefly unreachable
    (a Kafka broker restarting, a connection lost): worth a restart once the source is back."""
    return _TRANSIENT_SOURCE_ERROR.search(text) is not None


def failure_text(exc: BaseException) -> str:
    """The message of a query failure and of each of its causes, without the query description
    (plan, offsets) that Spark appends to the first one."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 10:
        seen.add(id(current))
        parts.append(str(current).split("\n=== Streaming Query ===", 1)[0])
        # PySpark keeps the Java cause of a captured exception in ``_cause``.
        cause = getattr(current, "_cause", None)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return "\n".join(parts)


def first_line(text: str) -> str:
    """The first line of a failure text, at most 300 characters (for logs and messages)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


# The last line of a Python traceback, or of a Java exception: "pkg.SomeError: what happened".
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.$]*(?:Error|Exception): \S.*$")


def public_failure(text: str) -> str:
    """A query failure for the job's public error: Spark's first line without the traceback it
    may quote, and the innermost exception's own line (what a user can act on)."""
    first = first_line(text).split(" Return Message:", 1)[0]
    causes = [line.strip() for line in text.splitlines() if _EXCEPTION_LINE.match(line.strip())]
    if causes and causes[-1] not in first:
        return f"{first} (cause: {causes[-1][:300]})"
    return first


def await_source(
    opts: IngestOptions,
    attempt: int,
    stop_event: threading.Event | None,
    failure: BaseException,
) -> bool:
    """Wait before restart number ``attempt`` (in a row) until ``check_source`` passes.

    Returns False when ``stop_event`` is set meanwhile (nothing to restart), raises
    ``IngestError`` when the source is still unavailable after ``opts.source_wait_s``.
    """
    delay = min(opts.restart_backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)
    deadline = time.monotonic() + opts.source_wait_s
    while True:
        if stop_event is not None:
            if stop_event.wait(delay):
                return False
        else:
            time.sleep(delay)
        try:
            check_source(opts.source)
            return True
        except SourceUnavailableError as exc:
            if time.monotonic() >= deadline:
                raise IngestError(
                    f"the ingestion query failed on its source and the source did not come "
                    f"back within {opts.source_wait_s:g} s: {exc}; query failure: "
                    f"{first_line(failure_text(failure))}"
                ) from exc
        delay = min(delay * 2, _MAX_BACKOFF_S, max(deadline - time.monotonic(), 0.0))
