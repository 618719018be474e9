"""How commands talk: a rich table for people, one JSON document for machines.

Errors go through one policy (``backend.cli.errors``): ``fail`` is re-exported here for the
commands that print.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from backend.cli.errors import fail, usage

__all__ = ["JsonFlag", "console", "emit_json", "fail", "fmt_s", "job_progress", "table", "usage"]

JsonFlag = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]

# Tables stay readable when the output goes to a file or a CI log (rich assumes 80 columns).
console = Console(width=None if sys.stdout.isatty() else 120)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    console.print(t)


def fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def job_progress(label: str) -> Progress:
    """The progress bar of a running job; ``label`` may use the task's fields (e.g. state)."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[message]}"),
        console=console,
        transient=True,
    )
