"""The ``recflow`` command.

Errors follow one policy (``backend.cli.errors``): one line on stderr, a documented exit code,
and the traceback only with ``recflow --debug``.
"""

from __future__ import annotations

from backend.cli.app import app


def main() -> None:
    app()
