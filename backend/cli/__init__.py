"""The ``recflow`` command."""

from __future__ import annotations

import sys

from backend.cli.app import app


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
