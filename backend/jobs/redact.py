"""A job's public error: the exception's message without server paths (and never a traceback).

The job's ``error`` is readable by anyone who may read the job, so it says what went wrong in
terms the caller knows: a path under the data directory or a configured data root becomes
relative to that root, and any other absolute path is reduced to ``…/<file name>``. The full
exception, traceback included, goes to the log of the process that ran the job (a Celery worker
or the CLI running it in process).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from backend.config import Settings

# An absolute POSIX path: a slash that does not continue a word, a URL or another path, then
# anything up to whitespace, a quote or closing punctuation.
ABSOLUTE = re.compile(r"(?<![\w.:/~\-])/[^\s'\"`()\[\]{}<>,;|]*")
MAX_CHARS = 2000


def roots_of(settings: Settings) -> list[Path]:
    """The directories a caller may name: the data dir and ``RECFLOW_DATA_ROOTS`` (if any)."""
    raw: list[Path] = [settings.data_dir, *settings.data_roots]
    out: list[Path] = []
    for root in raw:
        for form in (root.absolute(), root.resolve()):
            if form not in out:
                out.append(form)
    # Longest first, so a root inside another (uploads inside the data dir) wins.
    return sorted(out, key=lambda p: len(p.parts), reverse=True)


def redact_paths(text: str, roots: Iterable[Path]) -> str:
    """Replace every absolute path in ``text`` by a relative or neutral form."""
    ordered = list(roots)

    def neutral(match: re.Match[str]) -> str:
        raw = match.group(0)
        trail = ""
        while raw and raw[-1] in ".:!?":  # sentence punctuation after the path
            trail = raw[-1] + trail
            raw = raw[:-1]
        if raw in ("", "/"):
            return match.group(0)
        path = Path(raw)
        for root in ordered:
            if path == root:
                return "." + trail
            if path.is_relative_to(root):
                return str(path.relative_to(root)) + trail
        return f"…/{path.name}{trail}" if path.name else "…" + trail

    return ABSOLUTE.sub(neutral, text)


def public_error(exc: BaseException, settings: Settings) -> str:
    """``Type: message`` with paths redacted, bounded in length; no traceback."""
    message = str(exc).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    text = redact_paths(text, roots_of(settings))
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"
